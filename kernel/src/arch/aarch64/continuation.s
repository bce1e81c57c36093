// Calls into domains, and the continuations a crashed domain is unwound to.
//
// Continuation frame (128 bytes, at sp while a call is in progress; `domain::Continuation`):
//   0 x29, x30 | 16 x19, x20 | 32 x21, x22 | 48 x23, x24 | 64 x25, x26 | 80 x27, x28
//   96 the caller's QVQ_DOMAIN_CTX (current, status, continuations: 16 bytes)
//   112 KERNEL_ENTRY if the kernel itself entered the domain (initialisation, a domain
//   thread): those are not calls and have no CPU budget. Cleared when the frame goes.
// The domain a continuation called is not stored: it is the caller recorded in the next
// inner continuation, or, for the innermost, the current domain.
//
// QVQ_DOMAIN_CTX (`domain::Ctx`): 0 current domain (u32) | 4 proxy status (u32) |
//   8 innermost continuation. Saved and restored per thread by the scheduler.
// QVQ_SLOTS (`domain::proxy::Slot`, 64 bytes each): 0 table | 8 state | 16 caller (u32:
//   the owner while the callee runs, else NOBODY) | 20 owner (u32) | 24 callee (u32) |
//   28 paused (u32: a hot swap holds callers) | 32 calls (u64).
//
// Calls into domains are made with IRQs enabled (kernel threads run so, and the kernel
// only calls a domain then), so a resumed continuation re-enables IRQs rather than
// restoring a saved mask.

.equ CONT_SIZE, 128
.equ KERNEL_ENTRY_LO, 0x5254
.equ ERR_UNAVAILABLE, 2
.equ ERR_NOT_ALLOWED, 3

.macro SAVE_CONTINUATION
    sub     sp, sp, #CONT_SIZE
    stp     x29, x30, [sp, #0]
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
.endm

.section .text
// The trusted proxy, called by every generated interface proxy:
//   x0 = slot << 8 | method index, x1..x6 = the method's arguments, x8 = result location.
// Checks the slot is the caller's and its callee runs, counts the call, pushes a
// continuation, makes the callee current, and dispatches table[method](state, x1..x6).
// On failure sets the thread's proxy status to an RpcError code (then x0/x1/[x8] are
// meaningless); on success the status is the caller's own, 0 (the proxy clears it after
// reading a failure). The slot index is taken modulo 256: a wrong one can only alias a
// slot the caller check then refuses, or one of the caller's own.
.global qvq_proxy_call
qvq_proxy_call:
    ubfx    w16, w0, #8, #8
    adrp    x9, QVQ_SLOTS
    add     x9, x9, :lo12:QVQ_SLOTS
    add     x9, x9, x16, lsl #6
    adrp    x10, QVQ_DOMAIN_CTX
    add     x10, x10, :lo12:QVQ_DOMAIN_CTX
    ldp     x11, x13, [x10]             // caller (+ status), innermost continuation
    ldr     w12, [x9, #16]              // who may call through this slot now
    cmp     w12, w11
    b.ne    8f
    ldr     x12, [x9, #32]              // count the call (a statistic)
    add     x12, x12, #1
    str     x12, [x9, #32]
// From the slot check to the switch of the thread's context, a thread that an interrupt
// catches is rewound to qvq_proxy_call when it resumes (domain::before_resume): the check
// and the switch act as one step for the rest of the kernel. Only x9-x17 and the frame
// below sp change in between (and sp, from qvq_proxy_frame on).
.global qvq_proxy_frame
qvq_proxy_frame:
    SAVE_CONTINUATION
    stp     x11, x13, [sp, #96]         // the caller's context, restored on return
    ldr     w12, [x9, #24]              // callee (zero-extended: status 0)
    mov     x13, sp
    stp     x12, x13, [x10]             // current = callee, status 0, continuations = this
.global qvq_proxy_entered
qvq_proxy_entered:
    and     w17, w0, #0xff              // method index
    ldp     x13, x0, [x9]               // table, state
    ldr     x16, [x13, x17, lsl #3]
    blr     x16
    ldp     x11, x13, [sp, #96]
    adrp    x10, QVQ_DOMAIN_CTX
    add     x10, x10, :lo12:QVQ_DOMAIN_CTX
    stp     x11, x13, [x10]
    ldp     x29, x30, [sp, #0]
    add     sp, sp, #CONT_SIZE
    ret
8:  ldr     w12, [x9, #20]              // refused: the owner's slot to a dead callee, or not ours
    cmp     w12, w11
    b.ne    7f
    ldr     w12, [x9, #28]              // paused by a hot swap: wait at the gate, then retry
    cbnz    w12, 6f
    mov     w16, #ERR_UNAVAILABLE
    str     w16, [x10, #4]
    ret
7:  mov     w16, #ERR_NOT_ALLOWED
    str     w16, [x10, #4]
    ret
6:  stp     x29, x30, [sp, #-96]!
    mov     x29, sp
    stp     x0, x1, [sp, #16]
    stp     x2, x3, [sp, #32]
    stp     x4, x5, [sp, #48]
    stp     x6, x7, [sp, #64]
    str     x8, [sp, #80]
    mov     w0, w16                     // the slot index
    bl      qvq_proxy_gate_wait
    mov     w12, w0
    ldp     x0, x1, [sp, #16]
    ldp     x2, x3, [sp, #32]
    ldp     x4, x5, [sp, #48]
    ldp     x6, x7, [sp, #64]
    ldr     x8, [sp, #80]
    ldp     x29, x30, [sp], #96
    cbnz    w12, qvq_proxy_call
    adrp    x10, QVQ_DOMAIN_CTX
    add     x10, x10, :lo12:QVQ_DOMAIN_CTX
    mov     w16, #ERR_UNAVAILABLE
    str     w16, [x10, #4]
    ret

// qvq_call_with_continuation(domain, invoke, data, table, state) -> 0
//   The kernel's own way into a domain (initialisation, domain threads): pushes a
//   continuation, makes `domain` current, calls invoke(data, table, state).
.global qvq_call_with_continuation
qvq_call_with_continuation:
    SAVE_CONTINUATION
    adrp    x10, QVQ_DOMAIN_CTX
    add     x10, x10, :lo12:QVQ_DOMAIN_CTX
    ldp     x11, x13, [x10]
    stp     x11, x13, [sp, #96]
    mov     x11, #KERNEL_ENTRY_LO
    str     x11, [sp, #112]
    str     w0, [x10]
    mov     x13, sp
    str     x13, [x10, #8]
    mov     x9, x1
    mov     x0, x2
    mov     x1, x3
    mov     x2, x4
    blr     x9
    ldp     x11, x13, [sp, #96]
    adrp    x10, QVQ_DOMAIN_CTX
    add     x10, x10, :lo12:QVQ_DOMAIN_CTX
    stp     x11, x13, [x10]
    str     xzr, [sp, #112]
    mov     x0, #0
    ldp     x29, x30, [sp, #0]
    add     sp, sp, #CONT_SIZE
    ret

// qvq_resume_continuation(cont, code) -> !
//   Restores what the continuation saved (registers, SP) and returns `code` from the call
//   that pushed it, with IRQs enabled. The caller (Rust `unwind`) has already restored the
//   caller's context and set the proxy status. Frames in between are abandoned: nothing of the
//   crashed domain runs again, no destructors included.
.global qvq_resume_continuation
qvq_resume_continuation:
    mov     sp, x0
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    str     xzr, [sp, #112]
    msr     daifclr, #3
    mov     x0, x1
    ldp     x29, x30, [sp, #0]
    add     sp, sp, #CONT_SIZE
    ret
