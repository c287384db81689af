/* sys/resource.h on Windows: see axwin.h. */
#include <axwin.h>
