/* sys/sendfile.h on Windows: see axwin.h (a read and a send). */
#include <axwin.h>
