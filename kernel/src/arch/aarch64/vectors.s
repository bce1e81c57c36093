// Exception vectors and trap frames.
//
// Kernel threads run at EL1 on SP_EL0 ("EL1t"); exceptions switch to SP_EL1, the per-CPU
// exception stack. So a thread that overflows its stack into its guard page still gets a
// clean report, and a context switch is just "save the frame into one thread, load the
// frame of another" before `eret`. Exceptions taken on SP_EL1 itself (boot code, or a bug
// inside a handler) are fatal except for a few fix-ups, and run on a separate emergency stack.
//
// TrapFrame (272 bytes, matches `exception::TrapFrame`): x0..x30, sp, elr, spsr.

.equ FRAME_SIZE, 272
.equ KIND_SYNC, 0
.equ KIND_IRQ, 1
.equ KIND_FIQ, 2
.equ KIND_SERROR, 3
.equ KIND_LOWER_EL, 4

.macro SAVE_GPRS
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
.endm

.macro LOAD_GPRS_X2_X29
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
.endm

.macro SAVE_THREAD_FRAME
    sub     sp, sp, #FRAME_SIZE
    SAVE_GPRS
    mrs     x1, sp_el0
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
.endm

// Switch to the emergency stack (it cannot be the one that overflowed), keeping the old sp.
.macro SAVE_KERNEL_FRAME
    msr     tpidr_el1, x0
    mov     x0, sp
    msr     tpidrro_el0, x0
    adrp    x0, __emergency_stack_top
    add     x0, x0, :lo12:__emergency_stack_top
    mov     sp, x0
    mrs     x0, tpidr_el1
    sub     sp, sp, #FRAME_SIZE
    SAVE_GPRS
    mrs     x1, tpidrro_el0
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
.endm

.macro THREAD_ENTRY kind
    SAVE_THREAD_FRAME
    mov     x0, sp
    mov     x1, #\kind
    bl      trap_from_thread
    b       restore_thread_frame
.endm

.macro KERNEL_ENTRY kind
    SAVE_KERNEL_FRAME
    mov     x0, sp
    mov     x1, #\kind
    bl      trap_from_kernel
    b       restore_kernel_frame
.endm

.section .text.vectors, "ax"
.balign 2048
.global qvq_vectors
qvq_vectors:
// Current EL, SP_EL0: kernel threads.
.balign 128
    b       thread_sync
.balign 128
    b       thread_irq
.balign 128
    b       thread_fiq
.balign 128
    b       thread_serror
// Current EL, SP_EL1: boot code and handlers.
.balign 128
    b       kernel_sync
.balign 128
    b       kernel_irq
.balign 128
    b       kernel_fiq
.balign 128
    b       kernel_serror
// Lower EL, AArch64 and AArch32: QvQ runs nothing at EL0, so any of these is a bug.
.balign 128
    b       lower_el
.balign 128
    b       lower_el
.balign 128
    b       lower_el
.balign 128
    b       lower_el
.balign 128
    b       lower_el
.balign 128
    b       lower_el
.balign 128
    b       lower_el
.balign 128
    b       lower_el

thread_sync:
    THREAD_ENTRY KIND_SYNC
thread_irq:
    THREAD_ENTRY KIND_IRQ
thread_fiq:
    THREAD_ENTRY KIND_FIQ
thread_serror:
    THREAD_ENTRY KIND_SERROR
kernel_sync:
    KERNEL_ENTRY KIND_SYNC
kernel_irq:
    KERNEL_ENTRY KIND_IRQ
kernel_fiq:
    KERNEL_ENTRY KIND_FIQ
kernel_serror:
    KERNEL_ENTRY KIND_SERROR
lower_el:
    KERNEL_ENTRY KIND_LOWER_EL

// Restores the (possibly replaced) thread frame at sp and returns into that thread.
.global restore_thread_frame
restore_thread_frame:
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x30, x1, [sp, #240]
    msr     sp_el0, x1
    ldp     x0, x1, [sp, #0]
    LOAD_GPRS_X2_X29
    add     sp, sp, #FRAME_SIZE
    eret

// Returns from a fixed-up kernel exception, back onto the stack it interrupted.
restore_kernel_frame:
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    LOAD_GPRS_X2_X29
    ldr     x30, [sp, #240]
    ldr     x1, [sp, #8]
    msr     tpidr_el1, x1
    ldr     x1, [sp, #248]
    ldr     x0, [sp, #0]
    mov     sp, x1
    mrs     x1, tpidr_el1
    eret

// x0: a TrapFrame at the top of the exception stack. Leaves boot code for good.
.global qvq_enter_first_thread
qvq_enter_first_thread:
    mov     sp, x0
    b       restore_thread_frame

// Semihosting: x0 = operation, x1 = parameter block; result in x0. Without `-semihosting`
// the hlt traps; the sync handler recognises this address and skips it (see semihosting.rs).
.global qvq_semihosting_call
.global qvq_semihosting_hlt
qvq_semihosting_call:
qvq_semihosting_hlt:
    hlt     #0xf000
    ret
