// store-sqlite-locker FILE: opens FILE, takes SQLite's exclusive lock (BEGIN EXCLUSIVE), prints
// "locked" and holds the lock until it is killed. The SQLite store tests use it as "another
// process" holding the outbox file; a kill also shows a lock holder dying mid-transaction.
#include <sqlite3.h>

#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    sqlite3* db = nullptr;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
        std::fprintf(stderr, "open %s: %s\n", argv[1], sqlite3_errmsg(db));
        return 1;
    }
    char* err = nullptr;
    if (sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, &err) != SQLITE_OK) {
        std::fprintf(stderr, "BEGIN EXCLUSIVE: %s\n", err ? err : "?");
        return 1;
    }
    std::printf("locked\n");
    std::fflush(stdout);
    for (;;) pause();
}
