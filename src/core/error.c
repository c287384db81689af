/* error.c: ax_strerror() for system and axon codes. */
#include "internal.h"

#include <string.h>

const char *ax_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case AX_EOF:
        return "end of stream (peer closed)";
    case AX_EURL:
        return "malformed URL";
    case AX_ESCHEME:
        return "unknown or unsupported URL scheme";
    case AX_EHOST:
        return "host is not a numeric address or localhost";
    case AX_EPORT:
        return "port missing or out of range";
    case AX_EOUTPUTCAP:
        return "output cap exceeded (peer not reading)";
    case AX_EIDLE:
        return "idle timeout";
    case AX_ECLOSED:
        return "handle is closing or closed";
    case AX_ETIMEDOUT:
        return "timed out";
    case AX_ENOHOST:
        return "no such host";
    case AX_EDNSTIMEDOUT:
        return "timed out resolving the host name";
    case AX_EDNS:
        return "host name resolution failed";
    case AX_ETLS:
        return "TLS handshake failed";
    case AX_ECERT:
        return "certificate verification failed";
    case AX_EHTTP:
        return "malformed HTTP response";
    case AX_EREDIRECTS:
        return "too many redirects";
    case AX_ETOOBIG:
        return "response larger than the limit";
    }
    if (code < 0 && code > -4000) return AX__SYS_STRERROR(-code); /* static for known codes */
    return "unknown error";
}
