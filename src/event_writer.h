/* The PutExternalEventRequest packed directly (see event_writer.c). */
#ifndef LH_EVENT_WRITER_H
#define LH_EVENT_WRITER_H

#include "buffer.h"
#include "service.pb-c.h"

/* Write r's wire bytes into out (reset first): 1 done, 0 not a shape this writer takes (pack
 * it with protobuf-c), -1 out of memory. */
int lh_write_put_external_event(const Littlehorse__PutExternalEventRequest *r, lh_buf *out);

#endif
