// Calls into domains, and the continuations a crashed domain is unwound to. Assembled by
// arch/aarch64/trampoline.rs, which passes every offset and constant below in from the Rust
// types (the names in braces), so the layouts are defined once, in Rust:
//   Continuation (`domain::continuation`): x29, x30 at 0, x19..x28 from 16, the caller's
//     call context (current, status, continuations: 16 bytes) at {CONT_CALLER}, and at
//     {CONT_KIND} how the domain was entered (0: a proxy call; otherwise the kernel entered
//     it, for a domain thread or a call of its own: `EntryKind`). Cleared when it goes.
//   The domain a continuation called is not stored: it is the caller recorded in the next
//   inner continuation, or, for the innermost, the current domain.
//   QVQ_DOMAIN_CTX (`sched::call_context::CallContext`): current domain (u32) at 0, proxy
//     status (u32) at {CTX_STATUS}, innermost continuation at {CTX_CONTINUATIONS}.
//   QVQ_SLOTS (`domain::proxy::Slot`, 1 << {SLOT_SHIFT} bytes each): table at 0, state at 8,
//     caller at {SLOT_CALLER} (u32: the owner while the callee runs, else NOBODY), callee
//     right after it, owner at {SLOT_OWNER}, paused at {SLOT_PAUSED} (u32: a hot swap holds
//     callers), calls at {SLOT_CALLS} (u64), the call word a call through it starts with
//     at {SLOT_CALL_BASE} (interface tag << 16 | slot << 8) and the table's method count
//     right after it (u32 each).
//
// The slot table follows the call context by {SLOTS_FROM_CTX} bytes (kernel.ld places it so
// and checks it), so one `adr` reaches both. The kernel's statics are reached with a single `adr` (±1 MiB of this code: the whole
// kernel image is far smaller; the linker refuses the build if that ever changes), which
// saves the proxy path the `adrp`+`add` pair the linker could only relax to `adr`+`nop`.
//
// Calls into domains are made with IRQs enabled (kernel threads run so, and the kernel
// only calls a domain then), so a resumed continuation re-enables IRQs rather than
// restoring a saved mask.

.macro SAVE_CONTINUATION
    stp     x29, x30, [sp, #-{CONT_SIZE}]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
.endm

// Pushes the continuation (x11, x13: the caller's context) and makes the callee (x14)
// current with status 0 (x10: the call context).
.macro PUSH_AND_SWITCH
    SAVE_CONTINUATION
    stp     x11, x13, [sp, #{CONT_CALLER}]         // the caller's context, restored on return
    str     xzr, [sp, #{CONT_TICKS}]               // the call's CPU budget starts
    mov     x13, sp                         // x14: the callee (zero-extended: status 0)
    stp     x14, x13, [x10]             // current = callee, status 0, continuations = this
.endm

// Calls table[x17](state, x1..x6) of the slot (x9), then restores the caller's context
// and returns to it.
.macro DISPATCH_AND_RETURN
    ldp     x13, x0, [x9, #{SLOTS_FROM_CTX}]   // table, state
    ldr     x16, [x13, x17, lsl #3]
    blr     x16
    ldp     x11, x13, [sp, #{CONT_CALLER}]
    adr     x10, QVQ_DOMAIN_CTX
    stp     x11, x13, [x10]
    ldp     x29, x30, [sp], #{CONT_SIZE}
    ret
.endm

.section .text
// The trusted proxy, called by every generated interface proxy:
//   x0 = interface tag << 16 | slot << 8 | method index, x1..x6 = the method's arguments,
//   x8 = result location.
// Checks the slot is the caller's and its callee runs, that the thread has the stack a
// call is guaranteed (`CALL_STACK`, with room for the continuation), that the call was made for the
// slot's interface and the method is inside its table, counts the call, pushes a
// continuation, makes the callee current, and dispatches table[method](state, x1..x6).
// On failure sets the thread's proxy status to an RpcError code (then x0/x1/[x8] are
// meaningless); on success the status is the caller's own, 0 (the proxy clears it after
// reading a failure). The slot index is taken modulo 256: a wrong one can only alias a
// slot the caller check then refuses, or one of the caller's own.
.global qvq_proxy_call
qvq_proxy_call:
    ubfx    w16, w0, #8, #{SLOT_INDEX_BITS}
    adr     x10, QVQ_DOMAIN_CTX
    add     x9, x10, x16, lsl #{SLOT_SHIFT}    // the slot, less SLOTS_FROM_CTX
    ldp     x11, x13, [x10]             // caller (+ status), innermost continuation
    ldr     x12, [x10, #{CTX_CALL_FLOOR}]        // the lowest sp a call may start from
    cmp     sp, x12                         // less than the callee's CALL_STACK and this frame left
    b.lo    5f
    ldp     w12, w14, [x9, #({SLOTS_FROM_CTX} + {SLOT_CALLER})]         // who may call through this slot now, its callee
    ldp     w15, w16, [x9, #({SLOTS_FROM_CTX} + {SLOT_CALL_BASE})]      // tag << 16 | slot << 8, the method count
    sub     w17, w0, w15                    // the method index, if the tag is the slot's
    cmp     w12, w11                        // the caller's slot, and then (else C is set)
    ccmp    w17, w16, #2, eq                // the index below the method count: another
    b.hs    9f                              // tag or an index past the table is out of range
    ldr     x12, [x9, #({SLOTS_FROM_CTX} + {SLOT_CALLS})]              // count the call (a statistic)
    add     x12, x12, #1
    str     x12, [x9, #({SLOTS_FROM_CTX} + {SLOT_CALLS})]
// From the slot check to the switch of the thread's context, a thread that an interrupt
// catches is rewound to qvq_proxy_call when it resumes (domain::before_resume): the check
// and the switch act as one step for the rest of the kernel. Only x9-x17 and the frame
// below sp change in between (and sp, from qvq_proxy_frame on).
.global qvq_proxy_frame
qvq_proxy_frame:
    PUSH_AND_SWITCH
.global qvq_proxy_entered
qvq_proxy_entered:
    DISPATCH_AND_RETURN
9:  cmp     w12, w11                        // refused: which check?
    b.eq    7f                              // the caller's slot: a wrong tag or index
8:  ldr     w12, [x9, #({SLOTS_FROM_CTX} + {SLOT_OWNER})]              // the owner's slot to a dead callee, or not ours
    cmp     w12, w11
    b.ne    7f
    ldr     w12, [x9, #({SLOTS_FROM_CTX} + {SLOT_PAUSED})]              // paused by a hot swap: wait at the gate, then retry
    cbnz    w12, 6f
    mov     w16, #{ERR_UNAVAILABLE}
    str     w16, [x10, #{CTX_STATUS}]
    ret
5:  mov     w16, #{ERR_STACK_EXHAUSTED}          // the callee never runs; the proxy keeps its arguments
    str     w16, [x10, #{CTX_STATUS}]
    ret
7:  mov     w16, #{ERR_NOT_ALLOWED}
    str     w16, [x10, #{CTX_STATUS}]
    ret
6:  ubfx    w16, w0, #8, #{SLOT_INDEX_BITS}       // the slot index
    stp     x29, x30, [sp, #-96]!
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
    cbz     w12, 4f
    tbnz    x0, #{MOVING_CALL_BIT}, qvq_proxy_call_moving    // made again the way it came
    b       qvq_proxy_call
4:  adr     x10, QVQ_DOMAIN_CTX
    mov     w16, #{ERR_UNAVAILABLE}
    str     w16, [x10, #{CTX_STATUS}]
    ret

// The trampoline for a method with `RRef` arguments (its call word has MOVING_CALL set):
// the same checks as qvq_proxy_call, over the slot's moving range (the methods after the
// plain ones in the callee's table), then it moves each argument block to the callee —
// the caller must own it and the callee's quota must have room, or the call is refused
// with nothing moved — and enters the callee. IRQs stay masked from the first check to
// the switch into the callee, so the checks, the move and the switch are one step for the
// rest of the kernel (the shared-heap lock's holders mask IRQs too, on the one core).
//
// Fast path: x1 alone holds a block (the slot's first {SLOT_X1_ALONE} moving methods),
// and it is in the slab region: its record is found by arithmetic (QVQ_SLAB_HEAP: the
// records, then the blocks' bytes; `domain::slab`), its charge moves between the two
// accounts (QVQ_RREF_ACCOUNTS: charged, limit per domain; `domain::rref`). Anything else
// goes to qvq_proxy_move_arguments (Rust). Past the range check x0 is free: the callee
// gets its state there.
.global qvq_proxy_call_moving
qvq_proxy_call_moving:
    msr     daifset, #3
    ubfx    w16, w0, #8, #{SLOT_INDEX_BITS}
    adr     x10, QVQ_DOMAIN_CTX
    add     x9, x10, x16, lsl #{SLOT_SHIFT}    // the slot, less SLOTS_FROM_CTX
    ldp     x11, x13, [x10]                 // caller (+ status), innermost continuation
    ldr     x12, [x10, #{CTX_CALL_FLOOR}]
    cmp     sp, x12
    b.lo    15f
    ldp     w12, w14, [x9, #({SLOTS_FROM_CTX} + {SLOT_CALLER})]         // who may call now, the callee
    ldp     w15, w16, [x9, #({SLOTS_FROM_CTX} + {SLOT_MOVING_BASE})]    // the moving range, its x1-alone part
    sub     w17, w0, w15                    // which of the moving methods
    cmp     w12, w11
    ccmp    w17, w16, #2, eq
    b.hs    16f                             // refused, or a method for the slow path
    and     w17, w0, #0xff                  // the table index (the range check passed)
    adrp    x12, QVQ_SLAB_HEAP              // the records (the static is page-aligned)
    add     x16, x12, #{RECORDS_SIZE}       // the blocks' first byte
    sub     x16, x1, x16
    ror     x16, x16, #{UNIT_SHIFT}         // the unit, if x1 is one's first byte
    cmp     x16, #{SLAB_UNITS}
    b.hs    22f                             // else the slow path decides (kernel heap, or refused)
    add     x15, x12, x16, lsl #{RECORD_SHIFT}   // its record
    ldp     w12, w16, [x15]                 // owner, charge (0: no live block starts here)
    ldr     w7, [x15, #{REC_SENT}]          // where it is on its way to (0: nowhere)
    cmp     w12, w11
    ccmp    w7, #0, #0, eq                  // the caller's, on its way nowhere,
    ccmp    w16, #0, #4, eq                 // and live?
    b.eq    17f                             // else refused
    adr     x0, QVQ_RREF_ACCOUNTS
    add     x0, x0, w14, uxtw #{ACCOUNT_SHIFT}      // the callee's account
    ldp     x7, x12, [x0]                   // charged, limit
    add     x7, x7, x16
    cmp     x7, x12
    b.hi    18f                             // the callee's quota has no room
    str     x7, [x0]
    adr     x0, QVQ_RREF_ACCOUNTS
    add     x0, x0, w11, uxtw #{ACCOUNT_SHIFT}      // the caller's account
    ldr     x7, [x0]
    sub     x7, x7, x16
    str     x7, [x0]
    str     w14, [x15, #{REC_OWNER}]        // the callee owns it now
21: ldr     x12, [x9, #({SLOTS_FROM_CTX} + {SLOT_CALLS})]
    add     x12, x12, #1
    str     x12, [x9, #({SLOTS_FROM_CTX} + {SLOT_CALLS})]
    PUSH_AND_SWITCH
    msr     daifclr, #3
    DISPATCH_AND_RETURN
15: msr     daifclr, #3
    b       5b
16: cmp     w12, w11                        // the caller's slot: a method for the slow path?
    b.ne    19f
    ldr     w16, [x9, #({SLOTS_FROM_CTX} + {SLOT_MOVING})]
    cmp     w17, w16
    b.hs    19f
    and     w17, w0, #0xff                  // the table index
    mov     w7, #0                          // the slow path looks its moves up
    b       20f
22: mov     w7, #1                          // x1 alone: the slow path need not look
    b       20f
19: msr     daifclr, #3
    b       9b
17: mov     w16, #{ERR_NOT_ALLOWED}
    b       14f
18: mov     w16, #{ERR_NO_ROOM}
14: msr     daifclr, #3
    str     w16, [x10, #{CTX_STATUS}]
    ret
20: stp     x29, x30, [sp, #-128]!          // the slow path: keep what the call needs
    mov     x29, sp
    stp     x0, x1, [sp, #16]
    stp     x2, x3, [sp, #32]
    stp     x4, x5, [sp, #48]
    stp     x6, x8, [sp, #64]
    stp     x9, x10, [sp, #80]
    stp     x11, x13, [sp, #96]
    stp     x14, x17, [sp, #112]
    ubfx    w0, w0, #8, #{SLOT_INDEX_BITS}  // the slot
    mov     w1, w17                         // the method (its table index)
    mov     w2, w11                         // caller
    mov     w3, w14                         // callee
    add     x4, sp, #24                     // x1..x6, as saved
    mov     w5, w7                          // the moves, if known (else 0)
    bl      qvq_proxy_move_arguments
    mov     w16, w0
    ldp     x0, x1, [sp, #16]
    ldp     x2, x3, [sp, #32]
    ldp     x4, x5, [sp, #48]
    ldp     x6, x8, [sp, #64]
    ldp     x9, x10, [sp, #80]
    ldp     x11, x13, [sp, #96]
    ldp     x14, x17, [sp, #112]
    ldp     x29, x30, [sp], #128
    cbz     w16, 21b
    b       14b

// qvq_call_with_continuation(domain, invoke, data, table, state, kind) -> 0
//   The kernel's own way into a domain (initialisation, state hooks, domain threads):
//   pushes a continuation of `kind` (`domain::continuation::EntryKind`), makes `domain`
//   current, calls invoke(data, table, state).
.global qvq_call_with_continuation
qvq_call_with_continuation:
    SAVE_CONTINUATION
    adr     x10, QVQ_DOMAIN_CTX
    ldp     x11, x13, [x10]
    stp     x11, x13, [sp, #{CONT_CALLER}]
    stp     x5, xzr, [sp, #{CONT_KIND}]             // kind; ticks = 0
    str     w0, [x10]
    mov     x13, sp
    str     x13, [x10, #{CTX_CONTINUATIONS}]
    mov     x9, x1
    mov     x0, x2
    mov     x1, x3
    mov     x2, x4
    blr     x9
    ldp     x11, x13, [sp, #{CONT_CALLER}]
    adr     x10, QVQ_DOMAIN_CTX
    stp     x11, x13, [x10]
    str     xzr, [sp, #{CONT_KIND}]
    mov     x0, #0
    ldp     x29, x30, [sp], #{CONT_SIZE}
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
    str     xzr, [sp, #{CONT_KIND}]
    msr     daifclr, #3
    mov     x0, x1
    ldp     x29, x30, [sp], #{CONT_SIZE}
    ret
