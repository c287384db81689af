/* pty.h: a program on a pseudo-terminal, for the places that serve one
 * (`axon term agent`, src/cli/term.c; the hub's own terminals,
 * src/hub/gw_term.c): the set-up both need, and how both read the output. */
#ifndef AXON_CORE_PTY_H
#define AXON_CORE_PTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Run argv (argv[0] searched in PATH) on a new pseudo-terminal of cols x
 * rows, in a session of its own with the terminal as its controlling one,
 * SIGPIPE at its default.  envp: the environment, or NULL for this
 * process's.  The child neither allocates nor takes locks between fork and
 * exec (safe from a threaded program); a failed exec writes "PROG: why" on
 * the terminal and exits 127.  The master side, *master, is non-blocking
 * and close-on-exec.  The child's pid, or -1 with errno set. */
pid_t ax__pty_spawn(char *const argv[], char *const envp[], uint16_t cols, uint16_t rows,
                    int *master);

/* Set the window size (the kernel sends the child SIGWINCH).  0 or -1. */
int ax__pty_resize(int master, uint16_t cols, uint16_t rows);

/* Output gathered for sending.  A pty gives at most 4 KiB a read, and a
 * program printing in bulk gives one read after another.  So: what comes
 * in small pieces (an echoed key, a prompt: less than AX__PTY_BULK bytes
 * at a time) goes at once, and bulk output is held up to AX__PTY_HOLD_MS
 * (the caller's timer) or until the buffer is full, so it leaves in few
 * large messages: each costs the hub a send per viewer, whatever its
 * size (bench/RESULTS.md, issue 20). */
#define AX__PTY_OUT_MAX 65536
#define AX__PTY_BULK 1024
#define AX__PTY_HOLD_MS 20
typedef struct ax__pty_out {
    size_t len;
    bool holding; /* bulk seen: the caller's timer runs, send when it fires */
    char buf[AX__PTY_OUT_MAX];
} ax__pty_out;

enum {
    AX__PTY_WAIT = 0, /* nothing to send yet (nothing read, or holding) */
    AX__PTY_SEND = 1, /* send o->buf[0..len), then set len = 0 */
    AX__PTY_HOLD = 2, /* start the hold timer; send what is there when it fires */
    AX__PTY_EOF = -1, /* the terminal is closed (the child and its children
                         are gone): send what is there, then stop */
};

/* Read what the master has into o (non-blocking).  One of the above. */
int ax__pty_gather(int master, ax__pty_out *o);

#endif
