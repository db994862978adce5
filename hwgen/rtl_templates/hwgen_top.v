// hwgen_top: the generated convolution engine behind clean port names.
// Filled in by `hwgen generate` (the dollar-brace placeholders); see docs/engine.md for the protocol.
// All streams are valid/ready: a beat moves on a rising clock edge with valid and ready high.
`default_nettype none

module ${TOP} (
    input  wire                   clk,
    input  wire                   rst,        // synchronous, active high

    // control: pulse start for one cycle with desc_addr = a layer descriptor's byte address;
    // busy stays high until done pulses, one cycle after the layer's last write beat
    input  wire [31:0]            desc_addr,
    input  wire                   start,
    output wire                   busy,
    output wire                   done,
    output wire                   mac_active, // high in the cycles the MAC array issues a step

    // requests (engine -> memory): len beats from byte address addr; write = 1 for a write
    output wire                   req_valid,
    input  wire                   req_ready,
    output wire [31:0]            req_addr,
    output wire [15:0]            req_len,
    output wire                   req_write,

    // read data (memory -> engine), in request order, byte 0 in bits 7:0
    input  wire                   rd_valid,
    output wire                   rd_ready,
    input  wire [${BUS_BITS}-1:0] rd_data,

    // write data (engine -> memory), in request order
    output wire                   wr_valid,
    input  wire                   wr_ready,
    output wire [${BUS_BITS}-1:0] wr_data
);
    wire [48:0] req_payload;
    assign req_addr  = req_payload[31:0];
    assign req_len   = req_payload[47:32];
    assign req_write = req_payload[48];

    ${ENGINE} engine (
        .clk(clk), .rst(rst),
        .desc_addr(desc_addr), .start(start), .busy(busy), .done(done), .mac_active(mac_active),
        .req__valid(req_valid), .req__ready(req_ready), .req__payload(req_payload),
        .rd__valid(rd_valid), .rd__ready(rd_ready), .rd__payload(rd_data),
        .wr__valid(wr_valid), .wr__ready(wr_ready), .wr__payload(wr_data)
    );
endmodule

`default_nettype wire
