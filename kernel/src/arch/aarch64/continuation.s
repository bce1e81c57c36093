// Continuations: the point a crashed domain's call is unwound to.
//
// qvq_call_with_continuation(cont, invoke, data, table, state) -> 0
//   Saves the callee-saved registers, frame pointer, link register and SP into `cont`
//   (a `domain::Continuation`), then calls invoke(data, table, state) and returns 0.
// qvq_resume_continuation(cont, code) -> !
//   Restores what `cont` saved, restores DAIF from it, and returns `code` from the
//   qvq_call_with_continuation that saved it. Frames in between are abandoned: nothing in
//   the crashed domain runs again, no destructors included.
//
// Continuation layout: x19..x28 at 0..80, x29/x30 at 80, sp at 96, daif at 104.

.section .text
.global qvq_call_with_continuation
qvq_call_with_continuation:
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    mov     x9, sp
    str     x9, [x0, #96]
    mrs     x9, daif
    str     x9, [x0, #104]
    mov     x9, x1
    mov     x0, x2
    mov     x1, x3
    mov     x2, x4
    blr     x9
    mov     x0, #0
    ldp     x29, x30, [sp], #16
    ret

.global qvq_resume_continuation
qvq_resume_continuation:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldr     x9, [x0, #96]
    mov     sp, x9
    ldr     x9, [x0, #104]
    msr     daif, x9
    mov     x0, x1
    ldp     x29, x30, [sp], #16
    ret
