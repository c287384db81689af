/* pty.c: programs on pseudo-terminals (pty.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pty.h"

extern char **environ;

static void say(const char *s)
{
    if (write(STDERR_FILENO, s, strlen(s)) < 0) {
    } /* nothing more to try: the child exits next */
}

pid_t ax__pty_spawn(char *const argv[], char *const envp[], uint16_t cols, uint16_t rows,
                    int *master)
{
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    int fd;
    pid_t pid = forkpty(&fd, NULL, NULL, &ws);
    if (pid == -1) return -1;
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        execvpe(argv[0], argv, envp ? envp : environ);
        say(argv[0]);
        say(": ");
        say(strerror(errno));
        say("\n"); /* (the terminal makes it \r\n) */
        _exit(127);
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) { /* cannot happen on a fresh fd */
        int e = errno;
        close(fd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        errno = e;
        return -1;
    }
    *master = fd;
    return pid;
}

int ax__pty_resize(int master, uint16_t cols, uint16_t rows)
{
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    return ioctl(master, TIOCSWINSZ, &ws) == -1 ? -1 : 0;
}

int ax__pty_gather(int master, ax__pty_out *o)
{
    size_t got = 0;
    ssize_t n = 0;
    while (o->len < sizeof o->buf &&
           (n = read(master, o->buf + o->len, sizeof o->buf - o->len)) > 0)
        o->len += (size_t)n, got += (size_t)n;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return AX__PTY_EOF; /* EIO: the child and its children closed the terminal */
    if (o->len == sizeof o->buf) return AX__PTY_SEND;
    if (o->holding) return AX__PTY_WAIT;
    if (got >= AX__PTY_BULK) { /* bulk output: more is coming */
        o->holding = true;
        return AX__PTY_HOLD;
    }
    return o->len ? AX__PTY_SEND : AX__PTY_WAIT;
}
