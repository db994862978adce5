// hwgen_fastsim: the main loop of the fast simulation mode (`hwgen simulate --mode fast`).
//
// The Verilated hwgen_fastmem (the engine inside the HDL DRAM model) clocked from here, with no
// cocotb, VPI or Python between a run's start and its finish: a cycle is two evaluations of the
// model (clock low, clock high), of which only the rising edge runs logic. Python (sim/fast_bench.py) drives it through a pipe, one command
// per line on stdin, one answer per line on stdout:
//   reset N                  rst high for N cycles, then low                          -> "ok"
//   op OP LO HI              a backdoor operation (hwgen_fastmem.v: bd_op/bd_lo/bd_hi)  -> "ok"
//   run DESC TIMEOUT         start a run at the next rising edge, clock until `finished` ->
//                            "CYCLES ERROR HELD REQ READS WRITES" (run_cycles, error, err_* in hex)
//   state                    "ERROR CYCLE" (hex): the error pending between runs, the cycle number
//   quit
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

// An evaluation that ends a time step: the waves get its values. The evaluations of the backdoor
// and of the input strobe stay within a time step (Verilator's VCD writer refuses a second dump at
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
    top->bd_strobe = 0;
    top->ctl_strobe = 0;
    top->eval();  // initializes the model (then the clock edges evaluate it without eval_step)
#if VM_TRACE
    if (tfp) tfp->dump(ctx->time());
#endif
    rise();  // the testbench's first edge, before rst is registered
    char line[256], cmd[16], a[32], b[32], c[32];
    while (fgets(line, sizeof line, stdin)) {
        int n = sscanf(line, "%15s %31s %31s %31s", cmd, a, b, c);
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
        } else if (!strcmp(cmd, "op") && n == 4) {
            top->bd_op = u64(a);
            top->bd_lo = u64(b);
            top->bd_hi = u64(c);
            top->bd_strobe = 1;
            top->eval();
            top->bd_strobe = 0;
            top->eval();
            puts("ok");
        } else if (!strcmp(cmd, "run") && n == 3) {
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
