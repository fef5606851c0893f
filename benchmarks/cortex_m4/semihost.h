/* ARM semihosting (what QEMU's -semihosting provides): console output and
 * exit with a status, plus a tiny integer printer so the benchmark needs no
 * printf from the C library. */
#ifndef HADS_BENCH_SEMIHOST_H_
#define HADS_BENCH_SEMIHOST_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void semihost_write0(const char* text);
void semihost_write_uint(uint64_t value);
void semihost_write_int(int64_t value);
void semihost_exit(int status) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif  /* HADS_BENCH_SEMIHOST_H_ */
