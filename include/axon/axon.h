/* axon/axon.h: everything libaxon offers, in one include. */
#ifndef AXON_AXON_H
#define AXON_AXON_H

#include "error.h"
#include "alloc.h"
#include "slice.h"
#include "addr.h"
#include "loop.h"
#include "timer.h"
#include "conn.h"
#include "tls.h"
#include "udp.h"
#include "dns.h"
#include "thread.h"
#include "log.h"
#include "watch.h"

#define AXON_VERSION "0.1.0"

#endif
