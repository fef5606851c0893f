#include "semihost.h"

/* Semihosting operation numbers (ARM "Semihosting for AArch32 and AArch64"). */
enum { kSysWrite0 = 0x04, kSysExitExtended = 0x20 };
/* ADP_Stopped_ApplicationExit: a normal exit whose status is the subcode. */
enum { kAdpStoppedApplicationExit = 0x20026 };

static uint32_t semihost_call(uint32_t op, const void* arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void semihost_write0(const char* text) { semihost_call(kSysWrite0, text); }

void semihost_write_uint(uint64_t value) {
  char buf[24];
  int i = (int)sizeof(buf) - 1;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + (int)(value % 10u));
    value /= 10u;
  } while (value != 0u && i > 0);
  semihost_write0(&buf[i]);
}

void semihost_write_int(int64_t value) {
  if (value < 0) {
    semihost_write0("-");
    semihost_write_uint((uint64_t)(-(value + 1)) + 1u);
  } else {
    semihost_write_uint((uint64_t)value);
  }
}

void semihost_exit(int status) {
  /* SYS_EXIT_EXTENDED takes {reason, subcode}, so the status reaches QEMU's
   * own exit code on AArch32 too. */
  const uint32_t block[2] = {kAdpStoppedApplicationExit, (uint32_t)status};
  semihost_call(kSysExitExtended, block);
  for (;;) {
  }
}
