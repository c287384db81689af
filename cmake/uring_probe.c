/* Configure-time probe: can this machine's kernel run the io_uring backend
 * (a ring, a registered buffer ring)?  Exit status 0 if so.  The tests run
 * once per backend, and the uring pass only where it can. */
#include <liburing.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(void)
{
    struct io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0) return 1;
    struct io_uring_buf_ring *br =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED) return 1;
    struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = 8, .bgid = 0};
    int rc = io_uring_register_buf_ring(&ring, &reg, 0);
    io_uring_queue_exit(&ring);
    return rc < 0 ? 1 : 0;
}
