/* sys/wait.h for the unit tests on Windows: no fork there.  A test that
 * forks a helper process is skipped, with the reason, where it forks. */
#ifndef AXON_WIN_TEST_WAIT_H
#define AXON_WIN_TEST_WAIT_H
#include "runner.h"
#define WNOHANG 1
#define WIFEXITED(s) (((s)&0x7f) == 0)
#define WEXITSTATUS(s) (((s) >> 8) & 0xff)
#define WIFSIGNALED(s) 0
#define WTERMSIG(s) 0
#define SIGKILL 9
static inline int ax__win_no_fork(void)
{
    ax_test_skip("needs fork() for a helper process; Windows has none");
}
#define fork() ax__win_no_fork()
static inline int waitpid(int pid, int *st, int opt)
{
    (void)pid, (void)opt;
    *st = 0;
    return -1;
}
#define setpgid(a, b) 0
#endif
