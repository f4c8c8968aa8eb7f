// A throwaway directory under /tmp that goes away with the test process.
#pragma once

#include <string>
#include <sys/types.h>

namespace spillway::test_support {

class TempDir {
 public:
  // Creates /tmp/spillway-<prefix>-XXXXXX (mode 0700) and records the owning pid in it. The first
  // TempDir of a process also removes spillway-* dirs whose owner died without cleaning up
  // (a SIGKILLed test), so killed tests do not fill /tmp.
  explicit TempDir(const std::string& prefix);
  // Removes the tree, but only in the process that created it (not in fork()ed children), and not
  // when SPILLWAY_KEEP_TEST_DIRS=1 is set (to read a server's log after a failure).
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // Removes /tmp/spillway-* dirs whose recorded owner process is gone. Runs once per process
  // on its own; call it again to clean up after a child test process you SIGKILLed.
  static void remove_orphans();
  // Hands the directory to `user` (when running as root) so a server running as that user can
  // write in it. /tmp itself is world-traversable, so nothing above needs changing.
  void give_to(const std::string& user) const;

 private:
  std::string path_;
  pid_t owner_;
};

}  // namespace spillway::test_support
