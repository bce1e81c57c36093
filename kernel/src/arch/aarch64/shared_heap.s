// The shared heap's fast paths: the `rref_alloc` and `rref_free` services for blocks of
// the slab region (`domain::slab`). Assembled by arch/aarch64/shared_heap.rs, which passes
// every offset and constant below in from the Rust types (the names in braces):
//   QVQ_SLAB_HEAP (`slab::SlabHeap`, page-aligned): the records ({RECORDS_SIZE} bytes, 16
//     each: owner u32, charge u32 (0: no live block starts here), sent u32, size u16, next
//     u16 at {REC_NEXT}), then the blocks' bytes; unit i (1 << {UNIT_SHIFT} bytes) has
//     record i, and slab s holds units s << {SLAB_UNITS_SHIFT} onwards.
//   QVQ_SLABS (`slab::SlabState`): per class the first free unit (u16, bit 15 set: none)
//     at {ST_FREE}, per slab its class (u8) at {ST_CLASS} and live blocks (u16) at {ST_LIVE}.
//   QVQ_RREF_ACCOUNTS (`rref::Account`, 1 << {ACCOUNT_SHIFT} bytes per domain): charged,
//     limit (u64 each).
//   QVQ_DOMAIN_CTX: the current domain (u32) at 0.
// Each runs with IRQs masked from its first read of that state to its last write: the
// shared-heap lock's holders mask IRQs too, on the one core, so the two never interleave.
// Neither touches the stack, so no stack check is needed (a domain with no stack left
// still cannot fault here); whatever they do not handle they leave to the Rust service
// (`domain::services`), which checks the stack and takes the lock: a size past a slab, an
// alignment that is not a power of two, a class with no free slot (a slab must be carved),
// a block outside the region, and every refusal except "over quota".

.section .text
// qvq_rref_alloc(size, align) -> block, or null over the caller's quota.
.global qvq_rref_alloc
qvq_rref_alloc:
    cbz     x0, 9f                          // size 0: recorded as 1 by the Rust path
    sub     x9, x1, #1
    tst     x9, x1
    b.ne    9f                              // not a power of two
    cmp     x0, x1
    csel    x9, x0, x1, hi                  // the slot must hold max(size, align)
    sub     x9, x9, #1
    cmp     x9, #{SLAB}
    b.hs    9f                              // larger than a slab (or size and align 0)
    orr     x9, x9, #((1 << {UNIT_SHIFT}) - 1)
    clz     x9, x9
    mov     w10, #(64 - {UNIT_SHIFT})
    sub     w9, w10, w9                     // the class: slots of 1 << (UNIT_SHIFT + class)
    mov     x11, #(1 << {UNIT_SHIFT})
    lsl     x11, x11, x9
    add     x11, x11, #{RECORD_CHARGE}      // what the block costs (`slab::charge`)
    adr     x10, QVQ_DOMAIN_CTX
    ldr     w12, [x10]                      // the caller
    mrs     x13, daif
    msr     daifset, #3
    adr     x14, QVQ_RREF_ACCOUNTS
    add     x14, x14, w12, uxtw #{ACCOUNT_SHIFT}
    ldp     x15, x16, [x14]                 // charged, limit
    add     x15, x15, x11
    cmp     x15, x16
    b.hi    8f                              // over its quota: null
    adrp    x16, QVQ_SLABS
    add     x16, x16, :lo12:QVQ_SLABS
    add     x17, x16, x9, lsl #1
    ldrh    w2, [x17, #{ST_FREE}]           // the class's first free slot
    tbnz    w2, #15, 7f                     // none: a slab must be carved
    adrp    x3, QVQ_SLAB_HEAP
    add     x4, x3, x2, lsl #{RECORD_SHIFT} // its record
    ldrh    w5, [x4, #{REC_NEXT}]
    strh    w5, [x17, #{ST_FREE}]           // off the free list
    stp     w12, w11, [x4]                  // owner, charge
    stp     wzr, w0, [x4, #{REC_SENT}]      // sent nowhere; size (at most SLAB: next is 0)
    lsr     w5, w2, #{SLAB_UNITS_SHIFT}     // its slab
    add     x5, x16, x5, lsl #1
    ldrh    w6, [x5, #{ST_LIVE}]
    add     w6, w6, #1
    strh    w6, [x5, #{ST_LIVE}]
    str     x15, [x14]                      // charged
    msr     daif, x13
    add     x0, x3, #{RECORDS_SIZE}
    add     x0, x0, x2, lsl #{UNIT_SHIFT}
    ret
8:  msr     daif, x13
    mov     x0, #0
    ret
7:  msr     daif, x13
9:  b       qvq_rref_alloc_slow

// qvq_rref_free(block): frees a block the caller owns that is on its way nowhere (one it
// returned is its caller's to claim); anything else goes to the Rust service, which
// refuses it.
.global qvq_rref_free
qvq_rref_free:
    adrp    x3, QVQ_SLAB_HEAP
    add     x9, x3, #{RECORDS_SIZE}
    sub     x9, x0, x9
    ror     x9, x9, #{UNIT_SHIFT}           // the unit, if the block is one's first byte
    cmp     x9, #{UNITS}
    b.hs    9f                              // outside the region, or not a unit's start
    adr     x10, QVQ_DOMAIN_CTX
    ldr     w12, [x10]                      // the caller
    mrs     x13, daif
    msr     daifset, #3
    add     x4, x3, x9, lsl #{RECORD_SHIFT} // its record
    ldp     w5, w6, [x4]                    // owner, charge (0: no live block)
    ldr     w7, [x4, #{REC_SENT}]
    cmp     w5, w12
    ccmp    w7, #0, #0, eq                  // the caller's, on its way nowhere,
    ccmp    w6, #0, #4, eq                  // and live?
    b.eq    8f                              // else the Rust service refuses it
    adrp    x16, QVQ_SLABS
    add     x16, x16, :lo12:QVQ_SLABS
    lsr     w7, w9, #{SLAB_UNITS_SHIFT}     // its slab
    add     x8, x16, x7
    ldrb    w8, [x8, #{ST_CLASS}]           // the slab's class
    add     x8, x16, x8, lsl #1
    ldrh    w11, [x8, #{ST_FREE}]
    strh    w11, [x4, #{REC_NEXT}]
    strh    w9, [x8, #{ST_FREE}]            // on the class's free list
    str     wzr, [x4, #4]                   // charge 0: no live block
    add     x7, x16, x7, lsl #1
    ldrh    w11, [x7, #{ST_LIVE}]
    sub     w11, w11, #1
    strh    w11, [x7, #{ST_LIVE}]
    adr     x14, QVQ_RREF_ACCOUNTS
    add     x14, x14, w12, uxtw #{ACCOUNT_SHIFT}
    ldr     x15, [x14]
    sub     x15, x15, x6
    str     x15, [x14]                      // charged
    msr     daif, x13
    ret
8:  msr     daif, x13
9:  b       qvq_rref_free_slow
