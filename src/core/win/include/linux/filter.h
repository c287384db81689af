/* linux/filter.h on Windows: see axwin.h. */
#include <axwin.h>
/* no classic BPF on Windows: the types, for code that tries and falls back */
#ifndef AXON_WIN_FILTER_H
#define AXON_WIN_FILTER_H
struct sock_filter {
    unsigned short code;
    unsigned char jt, jf;
    unsigned int k;
};
struct sock_fprog {
    unsigned short len;
    struct sock_filter *filter;
};
#define BPF_RET 0x06
#define BPF_K 0x00
#endif
