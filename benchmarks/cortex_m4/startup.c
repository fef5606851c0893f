/* Minimal Cortex-M4 startup for QEMU mps2-an386: vector table, FPU enable,
 * .bss clear, C++ static constructors, then main(); the exit code goes back
 * to QEMU through semihosting so the benchmark driver sees it. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __bss_start__, __bss_end__, __stack_top;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
int main(void);

void Reset_Handler(void);
static void Fault_Handler(void);

__attribute__((section(".vectors"), used))
void (*const vector_table[16])(void) = {
    (void (*)(void))(&__stack_top),  /* initial stack pointer */
    Reset_Handler,                   /* reset */
    Fault_Handler,                   /* NMI */
    Fault_Handler,                   /* HardFault */
    Fault_Handler,                   /* MemManage */
    Fault_Handler,                   /* BusFault */
    Fault_Handler,                   /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler,                   /* SVCall */
    Fault_Handler,                   /* DebugMonitor */
    0,
    Fault_Handler,                   /* PendSV */
    Fault_Handler,                   /* SysTick */
};

void Reset_Handler(void) {
  /* The kernels are built with -mfloat-abi=hard: enable CP10/CP11 (the FPU)
   * before any floating-point instruction runs. */
  volatile uint32_t* const cpacr = (volatile uint32_t*)0xE000ED88u;
  *cpacr |= (0xFu << 20);
  __asm volatile("dsb\n\tisb" ::: "memory");

  for (uint32_t* p = &__bss_start__; p < &__bss_end__; ++p) *p = 0;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();

  semihost_exit(main());
}

static void Fault_Handler(void) {
  semihost_write0("FAULT: the benchmark program crashed\n");
  semihost_exit(99);
}
