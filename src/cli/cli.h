/* cli.h: the subcommands of the axon binary, one file each. */
#ifndef AXON_CLI_H
#define AXON_CLI_H

int cmd_echo(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_http(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_get(int argc, char **argv);

#endif
