/* arpa/inet.h on Windows: see axwin.h. */
#include <axwin.h>
