/* ax_watch: readiness of an fd the loop does not own (a pipe here), on
 * every backend; asking for nothing takes it off the loop; freeing inside
 * its own callback.  And the --redis URL parser (src/hub/redis.c). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hub/redis.h"
#include "testutil.h"

struct wstate {
    ax_loop *loop;
    ax_watch *w;
    int fds[2];
    int reads, writes;
    bool free_in_cb;
};

static void on_ready(ax_watch *w, unsigned events, void *ud)
{
    struct wstate *s = ud;
    if (events & AX_WATCH_READ) {
        char buf[16];
        s->reads++;
        ASSERT(read(s->fds[0], buf, sizeof buf) > 0);
    }
    if (events & AX_WATCH_WRITE) s->writes++;
    if (s->free_in_cb) {
        ax_watch_free(w);
        s->w = NULL;
    }
    ax_loop_stop(s->loop);
}

static void wstate_init(struct wstate *s)
{
    memset(s, 0, sizeof(*s));
    s->loop = tu_loop();
    ASSERT_EQ(pipe2(s->fds, O_NONBLOCK | O_CLOEXEC), 0);
}

TEST(watch_read_write_and_off)
{
    struct wstate s;
    wstate_init(&s);
    s.w = ax_watch_new(s.loop, s.fds[0], on_ready, &s);
    ASSERT(s.w != NULL);
    ASSERT_EQ(ax_loop_alive(s.loop), 0); /* asking for nothing: not alive */
    ASSERT_EQ(ax_watch_set(s.w, AX_WATCH_READ), 0);
    ASSERT_EQ(ax_loop_alive(s.loop), 1);
    ASSERT_EQ(ax_loop_run_once(s.loop, 0), 1); /* nothing to read yet */
    ASSERT_EQ(s.reads, 0);
    ASSERT_EQ(write(s.fds[1], "x", 1), 1);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.reads, 1);
    ASSERT_EQ(ax_watch_set(s.w, 0), 0); /* off: a write is not reported */
    ASSERT_EQ(ax_loop_alive(s.loop), 0);
    ASSERT_EQ(write(s.fds[1], "y", 1), 1);
    ASSERT_EQ(ax_loop_run_once(s.loop, 20), 0);
    ASSERT_EQ(s.reads, 1);
    ASSERT_EQ(ax_watch_set(s.w, AX_WATCH_READ), 0); /* on again: level-triggered */
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.reads, 2);
    ax_watch_free(s.w);
    /* the write side of the pipe is writable */
    s.w = ax_watch_new(s.loop, s.fds[1], on_ready, &s);
    ASSERT_EQ(ax_watch_set(s.w, AX_WATCH_WRITE), 0);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.writes, 1);
    ax_watch_free(s.w);
    ax_loop_free(s.loop);
    close(s.fds[0]);
    close(s.fds[1]);
}

TEST(watch_free_in_own_callback_and_hangup)
{
    struct wstate s;
    wstate_init(&s);
    s.free_in_cb = true;
    s.w = ax_watch_new(s.loop, s.fds[0], on_ready, &s);
    ASSERT_EQ(ax_watch_set(s.w, AX_WATCH_READ | AX_WATCH_WRITE), 0);
    ASSERT_EQ(write(s.fds[1], "x", 1), 1);
    close(s.fds[1]); /* data, then a hang-up: one callback, then freed */
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.reads, 1);
    ASSERT(s.w == NULL);
    ASSERT_EQ(ax_loop_alive(s.loop), 0);
    ax_loop_free(s.loop);
    close(s.fds[0]);
}

TEST(redis_url_forms)
{
    redis_url u;
    char why[256];
    ASSERT_EQ(redis_url_parse("redis://127.0.0.1:6380/2", &u, why, sizeof why), 0);
    ASSERT_STREQ(u.host, "127.0.0.1");
    ASSERT_EQ(u.port, 6380);
    ASSERT_EQ(u.db, 2);
    ASSERT_EQ(redis_url_parse("redis://cache.internal", &u, why, sizeof why), 0);
    ASSERT_STREQ(u.host, "cache.internal");
    ASSERT_EQ(u.port, 6379);
    ASSERT_EQ(u.db, 0);
    ASSERT_EQ(redis_url_parse("redis://axon:s3cr:et@[::1]:7000/", &u, why, sizeof why), 0);
    ASSERT_STREQ(u.user, "axon");
    ASSERT_STREQ(u.pass, "s3cr:et");
    ASSERT_STREQ(u.host, "::1");
    ASSERT_EQ(u.port, 7000);
    ASSERT_EQ(redis_url_parse("redis://:pw@h", &u, why, sizeof why), 0);
    ASSERT_STREQ(u.user, "");
    ASSERT_STREQ(u.pass, "pw");
    ASSERT_EQ(redis_url_parse("unix:///run/redis.sock?db=3", &u, why, sizeof why), 0);
    ASSERT_STREQ(u.host, "/run/redis.sock");
    ASSERT_EQ(u.port, -1);
    ASSERT_EQ(u.db, 3);
    ASSERT_EQ(redis_url_parse("rediss://:pw@cache.internal:6380", &u, why, sizeof why), 0);
    ASSERT(u.tls);
    ASSERT_STREQ(u.host, "cache.internal");
    ASSERT_EQ(u.port, 6380);
    ASSERT_EQ(redis_url_parse("rediss://h:6380/1?cert=/c.pem&key=/k.pem&cacert=/ca.pem", &u, why,
                              sizeof why),
              0);
    ASSERT(u.tls);
    ASSERT_STREQ(u.host, "h");
    ASSERT_EQ(u.db, 1);
    ASSERT_STREQ(u.cert, "/c.pem");
    ASSERT_STREQ(u.key, "/k.pem");
    ASSERT_STREQ(u.ca, "/ca.pem");
    ASSERT_EQ(redis_url_parse("rediss://h?cacert=/ca.pem", &u, why, sizeof why), 0);
    ASSERT_STREQ(u.cert, "");
    ASSERT_STREQ(u.ca, "/ca.pem");
    ASSERT_EQ(redis_urls_check("redis://a:7000,redis://b:7001 redis://c", why, sizeof why), 0);
    ASSERT_EQ(redis_urls_check("redis://a:7000,http://b", why, sizeof why), -1);
    /* Redis Cluster's slots: CRC16 of the hash tag (Redis's own examples) */
    ASSERT_EQ(redis_key_slot("123456789", 9), 12739u);
    ASSERT_EQ(redis_key_slot("{user1000}.following", 20), redis_key_slot("user1000", 8));
    ASSERT_EQ(redis_key_slot("foo{}{bar}", 10), redis_key_slot("foo{}{bar}", 10));
    const char *bad[] = {"http://h",
                         "redis://",
                         "redis://h:0",
                         "redis://h:70000",
                         "redis://h/x",
                         "redis://[::1",
                         "unix://",
                         "rediss://",
                         "redis://h?cert=/c.pem",
                         "rediss://h?bogus=1",
                         "rediss://h?key=/k.pem",
                         "rediss://h?cert="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        ASSERT_EQ(redis_url_parse(bad[i], &u, why, sizeof why), -1);
        ASSERT(why[0] != '\0');
    }
}
