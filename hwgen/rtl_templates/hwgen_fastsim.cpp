// hwgen_fastsim: the main loop of the fast simulation mode (`hwgen simulate --mode fast`).
//
// The Verilated hwgen_fastmem (the engine inside the HDL DRAM model) clocked from here, with no
// cocotb, VPI or Python between a run's start and its finish: a cycle is two evaluations of the
// model (clock low, clock high), of which only the rising edge runs logic. Python (sim/fast_bench.py) drives it through a pipe, one command
// per line on stdin, one answer per line on stdout:
//   reset N                  rst high for N cycles, then low                          -> "ok"
//   config                   the memory loads fastmem_config.hex (a pulse of cfg_strobe)  -> "ok"
//   load LO HI               memory beats LO..HI from fastmem_load.bin                    -> "ok"
//   regions LO HI            the region numbers of beats LO..HI from fastmem_regions.bin  -> "ok"
//   dump LO HI               memory beats LO..HI to fastmem_dump.bin                      -> "ok"
//   run DESC TIMEOUT         zero the traffic counters, start a run at the next rising edge,
//                            clock until `finished` -> "CYCLES ERROR HELD REQ READS WRITES"
//                            (run_cycles, error, err_* in hex)
//   counters N               the counters of regions 0..N-1, hex: "RB.. WB.. RN.. WN.."
//   state                    "ERROR CYCLE" (hex): the error pending between runs, the cycle number
//   quit
// Files are in the working folder, binary, as the arrays hold them: a memory beat's bytes in bus
// order (little-endian words), a region number as 16 bits little-endian; a file of another size
// is an error. (Through the simulator, $fread read a file one getc() per byte: 505 M instructions
// to load the ResNet-18 CIFAR image and its region map, callgrind; a copy is a memcpy.)
// The clock edges are those of the cocotb testbench (sim/engine_tb.py): between commands the clock
// is high (after a rising edge); the inputs change then, are registered by a pulse of ctl_strobe
// and taken at the next rising edge, so cycle numbers, and with them the stall draws, are the
// reference mode's.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

// Verilator's evaluation of the design itself, which Vtop::eval() (eval_step) calls between two
// cleanups for what this program never has: it empties the deleter of dynamic objects (classes) and
// the message queue of other evaluation threads, each under a mutex. Twice a cycle those took about
// 5 % of the CPU (perf); the clock edges call this instead, once the first eval() has initialized
// the model. A traced build keeps eval(), which also marks the trace's activity.
void Vtop___024root___eval(Vtop___024root *vlSelf);

static VerilatedContext *ctx;  // main's: the model is destroyed before its context
static Vtop *top;
#if VM_TRACE
static VerilatedVcdC *tfp = nullptr;
#endif

// An evaluation that ends a time step: the waves get its values. The evaluations of the
// configuration strobe and of the input strobe stay within a time step (Verilator's VCD writer refuses a second dump at
// one time, with a warning on stdout, which is the pipe to Python).
static void eval() {
#if VM_TRACE
    top->eval();
    if (tfp) tfp->dump(ctx->time());
#else
    Vtop___024root___eval(top->rootp);
#endif
}

// The rising edge (the design commits) and the falling edge (no logic: Verilator only notes that
// the clock is low, so that the next rising edge is seen as one).
static void rise() {
    ctx->timeInc(5);
    top->clk = 1;
    eval();
}

static void fall() {
    ctx->timeInc(5);
    top->clk = 0;
    eval();
}

// hwgen_fastmem registers rst, start, desc_addr and timeout: called after changing them, while the
// clock is high, so the next rising edge takes the new values (a falling edge did this before, at
// the cost of evaluating the design's logic twice per cycle).
static void latch() {
    top->ctl_strobe = 1;
    top->eval();
    top->ctl_strobe = 0;
    top->eval();
}

static unsigned long long u64(const char *s) { return strtoull(s, nullptr, 0); }

// hwgen_fastmem's arrays in the model, by Verilator's names for them (MODULE__DOT__NAME). The
// loaded words are seen by the design through its read port only, which no open read uses between
// runs (a run ends with none open, or with an error that ends the host's work), and the next
// rising edge evaluates that port again after its sequential logic, as it does at every edge.
#define FASTMEM(name) (top->rootp->hwgen_fastmem__DOT__##name)
// A beat's bytes in bus order are the array element's bytes on a little-endian host only.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the fast mode's loads and dumps assume a little-endian host");

// Elements LO..HI of `array` to or from `path`, all of them or an error message.
template <typename Array>
static const char *transfer(Array &array, const char *lo_s, const char *hi_s, const char *path, bool load) {
    static char why[160];
    unsigned long long lo = u64(lo_s), hi = u64(hi_s), size = sizeof(array.m_storage[0]) * (hi - lo + 1);
    if (lo > hi || hi >= array.size()) {
        snprintf(why, sizeof why, "%s: words %llu..%llu outside the memory", path, lo, hi);
        return why;
    }
    FILE *f = fopen(path, load ? "rb" : "wb");
    if (!f) {
        snprintf(why, sizeof why, "%s: cannot open", path);
        return why;
    }
    size_t done = load ? fread(&array[lo], 1, size, f) : fwrite(&array[lo], 1, size, f);
    bool whole = done == size && (!load || fgetc(f) == EOF);
    if (fclose(f) || !whole) {
        snprintf(why, sizeof why, "%s: %s %zu bytes, %llu expected", path, load ? "read" : "wrote", done, size);
        return why;
    }
    return nullptr;
}

static void answer(const char *error) {
    if (error)
        printf("error: %s\n", error);
    else
        puts("ok");
}

int main(int argc, char **argv) {
    VerilatedContext context;
    context.commandArgs(argc, argv);
    Vtop model(&context, "");
    ctx = &context;
    top = &model;
#if VM_TRACE
    const char *waves = nullptr;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--trace-file")) waves = argv[i + 1];
    if (waves) {
        ctx->traceEverOn(true);
        tfp = new VerilatedVcdC;
        top->trace(tfp, 99);
        tfp->open(waves);
    }
#endif
    top->clk = 0;
    top->rst = 1;
    top->start = 0;
    top->cfg_strobe = 0;
    top->ctl_strobe = 0;
    top->eval();  // initializes the model (then the clock edges evaluate it without eval_step)
#if VM_TRACE
    if (tfp) tfp->dump(ctx->time());
#endif
    rise();  // the testbench's first edge, before rst is registered
    char line[256], cmd[16], a[32], b[32];
    while (fgets(line, sizeof line, stdin)) {
        int n = sscanf(line, "%15s %31s %31s", cmd, a, b);
        if (n < 1) continue;
        if (!strcmp(cmd, "quit")) break;
        if (!strcmp(cmd, "reset") && n == 2) {
            top->rst = 1;
            latch();
            for (unsigned long long i = u64(a); i; i--) {
                fall();
                rise();
            }
            top->rst = 0;  // registered with the first run's start
            puts("ok");
        } else if (!strcmp(cmd, "config") && n == 1) {
            top->cfg_strobe = 1;
            top->eval();
            top->cfg_strobe = 0;
            top->eval();
            puts("ok");
        } else if (!strcmp(cmd, "load") && n == 3) {
            answer(transfer(FASTMEM(mem), a, b, "fastmem_load.bin", true));
        } else if (!strcmp(cmd, "regions") && n == 3) {
            answer(transfer(FASTMEM(region), a, b, "fastmem_regions.bin", true));
        } else if (!strcmp(cmd, "dump") && n == 3) {
            answer(transfer(FASTMEM(mem), a, b, "fastmem_dump.bin", false));
        } else if (!strcmp(cmd, "counters") && n == 2) {
            unsigned long long regions = u64(a);
            if (regions > FASTMEM(cnt_rb).size()) {
                printf("error: %llu regions, the memory counts %zu\n", regions, FASTMEM(cnt_rb).size());
            } else {
                for (auto *counts : {&FASTMEM(cnt_rb), &FASTMEM(cnt_wb), &FASTMEM(cnt_rn), &FASTMEM(cnt_wn)})
                    for (unsigned long long i = 0; i < regions; i++)
                        printf("%llx ", (unsigned long long)(*counts)[i]);
                puts("");
            }
        } else if (!strcmp(cmd, "run") && n == 3) {
            for (auto *counts : {&FASTMEM(cnt_rb), &FASTMEM(cnt_wb), &FASTMEM(cnt_rn), &FASTMEM(cnt_wn)})
                counts->fill(0);
            top->desc_addr = u64(a);
            top->timeout = u64(b);
            top->start = 1;
            latch();
            fall();
            rise();  // the memory and the engine take start; `finished` falls
            top->start = 0;
            latch();
            while (!top->finished) {  // it rises at the edge that ends the run (the timeout bounds it)
                fall();
                rise();
            }
            printf("%llx %x %llx %llx %x %x\n", (unsigned long long)top->run_cycles, (unsigned)top->error,
                   (unsigned long long)top->err_held, (unsigned long long)top->err_req, (unsigned)top->err_reads,
                   (unsigned)top->err_writes);
        } else if (!strcmp(cmd, "state")) {
            printf("%x %llx\n", (unsigned)top->error, (unsigned long long)top->cycle);
        } else {
            printf("error: bad command %s", line);
        }
        fflush(stdout);
    }
    top->final();
#if VM_TRACE
    if (tfp) tfp->close();
#endif
    return 0;
}
