// hwgen_fastmem: the simulated DRAM of sim/dram.py as HDL, around the generated hwgen_top shell.
// For simulation only (`hwgen simulate --mode fast`, sim/fast_bench.py): the memory, its stalls,
// its contract checks and its traffic counters run inside Verilator, clocked by a C++ main loop
// (hwgen_fastsim.cpp), so neither Python nor a simulator callback runs per cycle.
//
// Cycle for cycle it is `sim.dram.DramAgent`: in cycle c (the window ending at a rising edge, the
// commit edge) it offers req_ready, a read beat and wr_ready from its state after cycle c-1 and
// the stall draws of cycle c, then commits the handshakes at the edge. A draw is splitmix64 of
// (seed, stream, n) compared with an integer threshold that Python derived from the same float
// comparison the agent makes, so both models stall on the same cycles for the same seed.
//
// The memory's contents, its region map and its counters are arrays the main loop reads and writes
// in place, between clock edges (hwgen_fastsim.cpp: a copy, no simulator call per word). The
// configuration goes through the design: a rising edge of cfg_strobe loads it from
// fastmem_config.hex in the simulator's working folder, without a clock edge, so the logic that
// reads it (the ready decisions) is evaluated again at once.
// Filled in by hwgen.sim_target.fast_top (the dollar-brace placeholders; a doubled dollar is one).
`default_nettype none

module ${TOP} (
    // rst, start, desc_addr and timeout change while clk is high and are registered at a rising edge
    // of ctl_strobe, which the main loop pulses only when it changes them (before the falling edge
    // of the cycle that is to see them). So no logic depends on an input combinationally (Verilator
    // would run that logic at every evaluation) and none runs at a falling edge of clk: the falling
    // edge costs Verilator nothing, the rising edge one evaluation of the design.
    input  wire        clk,
    input  wire        ctl_strobe,
    input  wire        rst,
    input  wire [31:0] desc_addr,
    input  wire        start,
    input  wire [63:0] timeout,      // cycles from start before a run is a hang
    output reg         finished,     // rises at the commit edge that ends a run (done, error or timeout)
    output reg  [3:0]  error,        // why the run ended: 0 done, else one of the E_* codes below
    output reg  [63:0] run_cycles,   // done cycle - start cycle
    output reg  [63:0] cycle,        // the cycle number (the agent's: 0 the first cycle out of reset)
    output reg  [48:0] err_held,     // E_CHANGED: the request on hold; as {write, len, addr}
    output reg  [48:0] err_req,      // E_CHANGED, E_BURST: the offending request
    output reg  [31:0] err_reads,    // E_UNFINISHED: requests still open
    output reg  [31:0] err_writes,
    input  wire        cfg_strobe
);
    localparam BUS = ${BUS_BITS};
    localparam BB = BUS / 8;
    localparam SHIFT = ${BEAT_SHIFT};        // log2(BB)
    localparam WORD_BITS = ${WORD_BITS};   // memory of 2**WORD_BITS beats
    localparam NREG = ${REGIONS};          // region counters (region 0: outside every named region)
    localparam DEPTH = ${DEPTH};                 // open requests per direction (max_outstanding <= DEPTH)
    localparam LAT_THRESHOLDS = ${LAT_THRESHOLDS};        // latency spans up to LAT_THRESHOLDS + 1 cycles
    localparam E_CHANGED = 1, E_DROPPED = 2, E_BURST = 3, E_WR_CHANGED = 4, E_WR_DROPPED = 5,
               E_UNFINISHED = 6, E_TIMEOUT = 7;
    // configuration words (fastmem_config.hex)
    localparam C_SIZE = 0, C_MAX_OUT = 1, C_LAT_LO = 2, C_LAT_N = 3, C_BASE = 4, C_THR = 8, C_LAT_THR = 11;

    reg [63:0]    cfg [0:C_LAT_THR + LAT_THRESHOLDS - 1];
    // mem, region and cnt_* are read and written in place by the main loop under these names
    // (hwgen_fastsim.cpp's FASTMEM; a beat's bytes little-endian, as on the bus). The counters,
    // which nothing in the design reads, are marked public to be kept in the model; mem is not: a
    // public variable may change between evaluations, so the logic that reads it (the read port)
    // would be evaluated again at every evaluation, the falling edge's too.
    reg [BUS-1:0] mem [0:(1 << WORD_BITS) - 1];
    reg [15:0]    region [0:(1 << WORD_BITS) - 1];
    reg [63:0]    cnt_rb [0:NREG - 1] /*verilator public_flat*/;
    reg [63:0]    cnt_wb [0:NREG - 1] /*verilator public_flat*/;
    reg [63:0]    cnt_rn [0:NREG - 1] /*verilator public_flat*/;
    reg [63:0]    cnt_wn [0:NREG - 1] /*verilator public_flat*/;

    reg         rst_q, start_q;
    reg  [31:0] desc_addr_q;
    reg  [63:0] timeout_q;
    always @(posedge ctl_strobe) begin
        rst_q <= rst;
        start_q <= start;
        desc_addr_q <= desc_addr;
        timeout_q <= timeout;
    end

    // the engine
    wire        req_valid, req_write, rd_ready, wr_valid, busy, done;
    wire [31:0] req_addr;
    wire [15:0] req_len;
    wire [BUS-1:0] wr_data;
    wire        req_ready, rd_valid, wr_ready;
    wire [BUS-1:0] rd_data;

    ${ENGINE_TOP} dut (
        .clk(clk), .rst(rst_q), .desc_addr(desc_addr_q), .start(start_q), .busy(busy), .done(done), .mac_active(),
        .req_valid(req_valid), .req_ready(req_ready), .req_addr(req_addr), .req_len(req_len), .req_write(req_write),
        .rd_valid(rd_valid), .rd_ready(rd_ready), .rd_data(rd_data),
        .wr_valid(wr_valid), .wr_ready(wr_ready), .wr_data(wr_data)
    );

    // open requests: reads [due cycle, addr, beats left], writes [addr, beats left]
    reg [63:0] rq_due  [0:DEPTH - 1];
    reg [31:0] rq_addr [0:DEPTH - 1];
    reg [16:0] rq_left [0:DEPTH - 1];
    reg [31:0] wq_addr [0:DEPTH - 1];
    reg [16:0] wq_left [0:DEPTH - 1];
    localparam PTR = $$clog2(DEPTH);
    reg [PTR-1:0] rq_head, rq_tail, wq_head, wq_tail;
    reg [PTR:0]   rq_n, wq_n;
    reg [63:0] last_due, requests, run_start;
    reg        running;
    reg        rd_held, req_held, wr_held;
    reg [BUS-1:0] rd_held_data, wr_held_data;
    reg [48:0] req_held_val;

    function automatic [63:0] draw(input [63:0] base, input [63:0] n);
        reg [63:0] z;
        begin
            z = base + n;
            z = (z ^ (z >> 30)) * 64'hBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 64'h94D049BB133111EB;
            draw = z ^ (z >> 31);
        end
    endfunction

    // the latency of request n: lat_lo + how many thresholds its draw reaches
    function automatic [63:0] latency(input [63:0] n);
        reg [63:0] x;
        integer k;
        begin
            x = draw(cfg[C_BASE + 3], n);
            latency = cfg[C_LAT_LO];
            for (k = 0; k < LAT_THRESHOLDS; k = k + 1)
                if (k < cfg[C_LAT_N] && x >= cfg[C_LAT_THR + k]) latency = latency + 1;
        end
    endfunction

    wire [48:0] req_val = {req_write, req_len, req_addr};
    wire [63:0] outstanding = {{(63 - PTR){1'b0}}, rq_n} + {{(63 - PTR){1'b0}}, wq_n};
    assign req_ready = (outstanding < cfg[C_MAX_OUT]) && draw(cfg[C_BASE + 0], cycle) < cfg[C_THR + 0];
    wire rd_offer = !rd_held && rq_n != 0 && rq_due[rq_head] <= cycle && draw(cfg[C_BASE + 1], cycle) < cfg[C_THR + 1];
    assign rd_valid = rd_held || rd_offer;
    wire [BUS-1:0] rd_word = mem[rq_addr[rq_head][WORD_BITS + SHIFT - 1:SHIFT]];
    assign rd_data = rd_held ? rd_held_data : rd_word;
    assign wr_ready = wq_n != 0 && draw(cfg[C_BASE + 2], cycle) < cfg[C_THR + 2];

    wire [WORD_BITS-1:0] req_word = req_addr[WORD_BITS + SHIFT - 1:SHIFT];
    wire [WORD_BITS-1:0] rd_head_word = rq_addr[rq_head][WORD_BITS + SHIFT - 1:SHIFT];
    wire [WORD_BITS-1:0] wr_head_word = wq_addr[wq_head][WORD_BITS + SHIFT - 1:SHIFT];

    reg [3:0]  e;
    reg [PTR:0] nr, nw;
    reg [63:0] due;

    always @(posedge clk) begin
        if (rst_q) begin
            cycle <= 0;
            rq_head <= 0; rq_tail <= 0; rq_n <= 0; wq_head <= 0; wq_tail <= 0; wq_n <= 0;
            last_due <= 0; requests <= 0; run_start <= 0; running <= 0; finished <= 0; error <= 0;
            rd_held <= 0; req_held <= 0; wr_held <= 0; run_cycles <= 0;
        end else begin
            cycle <= cycle + 1;
            e = 0;
            nr = rq_n;
            nw = wq_n;
            // requests
            if (req_valid) begin
                if (req_held && req_val != req_held_val) begin
                    e = E_CHANGED;
                    err_held <= req_held_val;
                    err_req <= req_val;
                end else if (req_ready) begin
                    req_held <= 0;
                    if (req_len == 0 || req_addr % BB != 0 || {32'd0, req_addr} + {48'd0, req_len} * BB > cfg[C_SIZE]) begin
                        e = E_BURST;
                        err_req <= req_val;
                    end else begin
                        if (req_write) begin
                            cnt_wn[region[req_word]] <= cnt_wn[region[req_word]] + 1;
                            wq_addr[wq_tail] <= req_addr;
                            wq_left[wq_tail] <= {1'b0, req_len};
                            wq_tail <= wq_tail + 1;
                            nw = nw + 1;
                        end else begin
                            cnt_rn[region[req_word]] <= cnt_rn[region[req_word]] + 1;
                            due = cycle + 1 + latency(requests);
                            if (due < last_due) due = last_due;
                            last_due <= due;
                            rq_due[rq_tail] <= due;
                            rq_addr[rq_tail] <= req_addr;
                            rq_left[rq_tail] <= {1'b0, req_len};
                            rq_tail <= rq_tail + 1;
                            nr = nr + 1;
                        end
                        requests <= requests + 1;
                    end
                end else begin
                    req_held <= 1;
                    req_held_val <= req_val;
                end
            end else if (req_held)
                e = E_DROPPED;
            // read beats: counted when offered, as the agent does
            if (rd_offer)
                cnt_rb[region[rd_head_word]] <= cnt_rb[region[rd_head_word]] + BB;
            if (rd_valid && rd_ready) begin
                rd_held <= 0;
                if (rq_left[rq_head] == 1) begin
                    rq_head <= rq_head + 1;
                    nr = nr - 1;
                end else begin
                    rq_addr[rq_head] <= rq_addr[rq_head] + BB;
                    rq_left[rq_head] <= rq_left[rq_head] - 1;
                end
            end else if (rd_offer) begin
                rd_held <= 1;
                rd_held_data <= rd_word;
            end
            // write beats
            if (wr_valid) begin
                if (wr_held && wr_data != wr_held_data) begin
                    if (e == 0) e = E_WR_CHANGED;
                end else if (wr_ready) begin
                    wr_held <= 0;
                    mem[wr_head_word] <= wr_data;
                    cnt_wb[region[wr_head_word]] <= cnt_wb[region[wr_head_word]] + BB;
                    if (wq_left[wq_head] == 1) begin
                        wq_head <= wq_head + 1;
                        nw = nw - 1;
                    end else begin
                        wq_addr[wq_head] <= wq_addr[wq_head] + BB;
                        wq_left[wq_head] <= wq_left[wq_head] - 1;
                    end
                end else begin
                    wr_held <= 1;
                    wr_held_data <= wr_data;
                end
            end else if (wr_held && e == 0)
                e = E_WR_DROPPED;
            rq_n <= nr;
            wq_n <= nw;
            // the run
            if (start_q) begin
                running <= 1;
                run_start <= cycle;
                finished <= 0;
                error <= 0;
            end else if (running) begin
                if (e == 0 && cycle > run_start) begin
                    if (done && (nr != 0 || nw != 0)) begin
                        e = E_UNFINISHED;
                        err_reads <= {{(31 - PTR){1'b0}}, nr};
                        err_writes <= {{(31 - PTR){1'b0}}, nw};
                    end else if (!done && cycle - run_start >= timeout_q)
                        e = E_TIMEOUT;
                end
                if (e != 0 || (done && cycle > run_start)) begin
                    running <= 0;
                    finished <= 1;
                    error <= e;
                    run_cycles <= cycle - run_start;
                end
            end else if (e != 0 && error == 0)
                error <= e;  // outside a run: reported when the next one starts
        end
    end

    always @(posedge cfg_strobe) $$readmemh("fastmem_config.hex", cfg);
endmodule

`default_nettype wire
