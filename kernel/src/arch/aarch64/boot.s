// Entry from QEMU, U-Boot `booti` or the Raspberry Pi firmware.
// x0 = physical address of the device tree (booting.rst); MMU and caches are off.

.section .text.head, "ax"
.global _start
_start:
    // arm64 Linux Image header (Documentation/arch/arm64/booting.rst), 64 bytes.
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0x80000                 // text_offset: loaded 512 KiB into a 2 MiB aligned base
    .quad   __image_size            // image_size, including BSS and boot stacks
    .quad   0x2                     // flags: little endian, 4 KiB pages, 2 MiB aligned base
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic at 0x38
    .long   0                       // res5 (no PE header)

.section .text.boot, "ax"
primary_entry:
    mov     x19, x0                 // keep the device tree pointer

    // Only core 0 boots; QvQ is uniprocessor. Other cores sleep here for good.
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cbnz    x1, park

    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    mov     x20, x1                 // the EL we were entered at, for the boot log
    cmp     x1, #3
    b.eq    from_el3
    cmp     x1, #2
    b.eq    from_el2
    b       at_el1

from_el3:
    // Lower levels are AArch64 and non-secure; continue at EL2 with interrupts masked.
    mov     x1, #0x501              // SCR_EL3: RW | HCE | NS
    msr     scr_el3, x1
    msr     mdcr_el3, xzr           // no PMU or debug traps to EL3 (pmu.rs counts cycles)
    mov     x1, #0x3c9              // SPSR: EL2h, DAIF masked
    msr     spsr_el3, x1
    adr     x1, from_el2
    msr     elr_el3, x1
    eret

from_el2:
    mov     x1, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64; no traps to EL2
    msr     hcr_el2, x1
    mrs     x1, cnthctl_el2
    orr     x1, x1, #3              // EL1PCTEN | EL1PCEN: EL1 may use the physical timer
    msr     cnthctl_el2, x1
    msr     cntvoff_el2, xzr
    mov     x1, #0x33ff             // CPTR_EL2: trap nothing
    msr     cptr_el2, x1
    msr     hstr_el2, xzr
    mrs     x1, pmcr_el0
    ubfx    x1, x1, #11, #5         // PMCR_EL0.N, the event counters
    msr     mdcr_el2, x1            // HPMN = N (all to EL1), TPM = TPMCR = 0: EL1 uses the PMU untrapped
    ldr     x1, =0x30d00800         // SCTLR_EL1: RES1 bits only; MMU and caches off
    msr     sctlr_el1, x1
    mov     x1, #0x3c5              // SPSR: EL1h, DAIF masked
    msr     spsr_el2, x1
    adr     x1, at_el1
    msr     elr_el2, x1
    eret

at_el1:
    msr     daifset, #0xf
    adrp    x1, __boot_stack_top
    add     x1, x1, :lo12:__boot_stack_top
    mov     sp, x1

    // Zero BSS. Bounds are 16-byte aligned by the linker script; stores stay aligned,
    // which matters because with the MMU off all data accesses are Device memory.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    mov     x0, x19
    mov     x1, x20
    bl      kernel_entry            // never returns

park:
    wfe
    b       park
