#include "spillway/test_support/temp_dir.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <pwd.h>
#include <stdexcept>
#include <unistd.h>
#include <vector>

namespace spillway::test_support {
namespace {

namespace fs = std::filesystem;
constexpr const char* kRoot = "/tmp";
constexpr const char* kOwnerFile = "owner.pid";

bool keep_dirs() {
  const char* keep = std::getenv("SPILLWAY_KEEP_TEST_DIRS");
  return keep != nullptr && *keep != '\0' && *keep != '0';
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// A test killed by SIGKILL leaves its dirs behind (its servers die with it via PDEATHSIG).
// Remove those whose recorded owner is gone.
void sweep_orphans_in_tmp() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kRoot, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("spillway-", 0) != 0 || !entry.is_directory(ec)) continue;
    std::ifstream in(entry.path() / kOwnerFile);
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 0 || process_alive(pid)) continue;
    fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

TempDir::TempDir(const std::string& prefix) : owner_(::getpid()) {
  static std::once_flag swept;
  if (!keep_dirs()) std::call_once(swept, remove_orphans);

  std::string templ = std::string(kRoot) + "/spillway-" + prefix + "-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw std::runtime_error("TempDir: mkdtemp " + templ + ": " + std::strerror(errno));
  path_ = buf.data();
  std::ofstream(path_ + "/" + kOwnerFile) << owner_ << '\n';
}

void TempDir::remove_orphans() { sweep_orphans_in_tmp(); }

TempDir::~TempDir() {
  if (::getpid() != owner_) return;
  if (keep_dirs()) {
    std::fprintf(stderr, "spillway test_support: keeping %s (SPILLWAY_KEEP_TEST_DIRS)\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void TempDir::give_to(const std::string& user) const {
  if (user.empty() || ::geteuid() != 0) return;
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) throw std::runtime_error("TempDir: no such user '" + user + "'");
  if (::chown(path_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
    throw std::runtime_error("TempDir: chown " + path_ + " to " + user + ": " + std::strerror(errno));
}

}  // namespace spillway::test_support
