/* args.c: option values the subcommands share. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_parse_secs(const char *cmd, const char *opt, const char *arg, uint32_t *ms)
{
    char *end;
    double v = strtod(arg, &end);
    if (*end || v <= 0 || v > 86400) {
        fprintf(stderr, "axon %s: %s wants seconds (0 < S <= 86400), got '%s'\n", cmd, opt, arg);
        return -1;
    }
    *ms = (uint32_t)(v * 1000);
    if (*ms == 0) *ms = 1;
    return 0;
}
