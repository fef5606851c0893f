/* Deterministic instruction counting on QEMU mps2-an386.
 *
 * The CMSDK APB timer 0 (0x40000000) is clocked by the board's 25 MHz SYSCLK.
 * With `-icount shift=0` QEMU advances virtual time by exactly 1 ns per
 * executed instruction, so the timer decrements once every 40 instructions:
 * instructions = ticks * 40, with a resolution of 40 instructions, and the
 * count does not depend on the host's load. (DWT CYCCNT is not modelled by
 * QEMU, and SysTick is only 24 bits wide.) */
#ifndef HADS_BENCH_TIMER_H_
#define HADS_BENCH_TIMER_H_

#include <stdint.h>

#define HADS_BENCH_INSTRUCTIONS_PER_TICK 40u

typedef struct {
  volatile uint32_t ctrl;
  volatile uint32_t value;
  volatile uint32_t reload;
  volatile uint32_t intstatus_clear;
} CmsdkTimer;

#define HADS_BENCH_TIMER0 ((CmsdkTimer*)0x40000000u)

static inline void timer_start(void) {
  HADS_BENCH_TIMER0->ctrl = 0u;
  HADS_BENCH_TIMER0->reload = 0xFFFFFFFFu;
  HADS_BENCH_TIMER0->value = 0xFFFFFFFFu;
  HADS_BENCH_TIMER0->ctrl = 1u;  /* enable, no interrupt, internal clock */
}

/* Down-counter: elapsed ticks = earlier reading - later reading. */
static inline uint32_t timer_now(void) { return HADS_BENCH_TIMER0->value; }

#endif  /* HADS_BENCH_TIMER_H_ */
