// MULT18X18D: a behavioural model of the subset of Lattice ECP5's 18x18 DSP multiplier that hwgen's
// generated engines instantiate (hwgen/gateware/dsp.py, `hwgen generate --dsp ecp5`), for simulation only
// (Verilator, Icarus). Never give it to Yosys or nextpnr: there the real cell (Yosys's ECP5 black box)
// is what gets placed.
//   - P = A x B, each operand signed when its SIGNEDA / SIGNEDB is high (SIGNEDx is held constant by
//     the generator, so whether the cell registers it does not matter here);
//   - A, B and P registered on CLK0 when REG_INPUTA_CLK, REG_INPUTB_CLK and REG_OUTPUT_CLK say "CLK0"
//     (unregistered when "NONE"), loading when CE0 is high, cleared by RST0 (synchronous reset, the
//     cell's default RESETMODE). Any other value of these parameters stops elaboration (a missing
//     module names the problem), and any other parameter is not declared, so setting one does too.
`default_nettype none

// the module has the cell's name, so the generated Verilog instantiates the real cell when synthesized
/* verilator lint_off DECLFILENAME */
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE",
    parameter REG_INPUTB_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE"
) (
    input  wire A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input  wire B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    // the C operand and the shift-chain selects, which the generator ties to 0 as Yosys's own mapping does
    // (not modelled)
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input  wire SOURCEA, SOURCEB,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire SIGNEDA, SIGNEDB,
    input  wire CLK0, CE0, RST0,
    output wire P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
    generate
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") ||
            (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0") ||
            (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")) begin : unsupported
            MULT18X18D_model_supports_only_NONE_or_CLK0_registers error();
        end
    endgenerate

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg  [17:0] a_q, b_q;
    reg  [35:0] p_q;
    wire [17:0] a_in = REG_INPUTA_CLK == "CLK0" ? a_q : a;
    wire [17:0] b_in = REG_INPUTB_CLK == "CLK0" ? b_q : b;
    // 19-bit two's complement operands: the sign bit, or a 0 above an unsigned operand
    wire signed [18:0] a_x = {SIGNEDA & a_in[17], a_in};
    wire signed [18:0] b_x = {SIGNEDB & b_in[17], b_in};
    wire signed [35:0] product = a_x * b_x;  // every product of two 18-bit operands fits in 36 bits

    initial begin  // the configuration's global set/reset (the cell's default GSR = "ENABLED") clears them
        a_q = 18'd0;
        b_q = 18'd0;
        p_q = 36'd0;
    end

    always @(posedge CLK0) begin
        if (RST0) begin
            a_q <= 18'd0;
            b_q <= 18'd0;
            p_q <= 36'd0;
        end else if (CE0) begin
            a_q <= a;
            b_q <= b;
            p_q <= product;
        end
    end

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = REG_OUTPUT_CLK == "CLK0" ? p_q : product;
endmodule
/* verilator lint_on DECLFILENAME */

`default_nettype wire
