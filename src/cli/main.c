/* main.c: `axon COMMAND [ARGS]`: dispatch to one file per subcommand. */
#include <stdio.h>
#include <string.h>

#include <axon/axon.h>

#include "cli.h"

int cmd_token(int argc, char **argv); /* token.c */
int cmd_bench(int argc, char **argv); /* bench.c */

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"serve", cmd_serve, "the real-time hub: chat rooms and live topics for every client"},
    {"echo", cmd_echo, "echo server on tcp://, udp://, unix://, tls://, ws:// and wss:// URLs"},
    {"cat", cmd_cat, "netcat for every transport: connect, listen, relay, broker"},
    {"http", cmd_http, "serve a folder over HTTP/1.1 (static files, ranges, 304)"},
    {"get", cmd_get, "fetch http:// and https:// URLs (curl-like: -i, -I, -o, -L, -d, -H)"},
    {"cert", cmd_cert, "make a self-signed TLS certificate and key for local use"},
    {"token", cmd_token, "print a signed token (JWT) naming a user and the topics it may use"},
    {"term", cmd_term, "remote terminals through the hub: agent (behind NAT) and connect"},
    {"rpc", cmd_rpc, "commands on devices through the hub: request/response with time-outs"},
    {"bench", cmd_bench, "load generator for every protocol axon speaks, with honest latency"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "axon %s: socket programming for C, done completely\n\n"
            "Usage: axon COMMAND [OPTIONS]\n\nCommands:\n",
            AXON_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-8s %s\n", "help", "this list, or 'axon help COMMAND': what COMMAND does");
    fprintf(out, "\n'axon help COMMAND' (or 'axon COMMAND --help') describes each command.\n");
}

static int find(const char *name)
{
    for (int i = 0; i < (int)(sizeof commands / sizeof commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0) return i;
    return -1;
}

static int unknown(const char *name)
{
    fprintf(stderr, "axon: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}

/* `axon help [COMMAND]`, as git: the list, or COMMAND --help. */
static int help(int argc, char **argv)
{
    if (argc < 3) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[2], "help") == 0) return help(2, argv);
    int i = find(argv[2]);
    if (i < 0) return unknown(argv[2]);
    static char flag[] = "--help";
    char *av[] = {argv[2], flag, NULL};
    return commands[i].fn(2, av);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("axon %s\n", AXON_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) return help(argc, argv);
    int i = find(argv[1]);
    return i < 0 ? unknown(argv[1]) : commands[i].fn(argc - 1, argv + 1);
}
