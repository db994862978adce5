"""The engine's analytical model: exact DRAM bytes per tensor and the cycle count of a layer.

The bytes follow the layer's loop nest (`tiling.layer_tiling`): the descriptor once, every row
band's input rows (halo included; of a column tile, the beats covering its columns) once, or once
per lane group when groups are the outer loop, every group's weights and table once, or once per
tile when tiles are the outer loop, and each output row once, in the layouts of `memory_map.py`.
`hwgen simulate` checks them against the bytes counted in RTL simulation, and the `engine`
analysis preset reports them.

The cycles follow the engine's loops: loads (one beat per cycle after a request latency), then
per lane group the passes (output row x pixel-lane group), each the sum over input channels of
`max(steps, fetch)` cycles (`plan.group_pass_cycles`: steps are the layer's taps, or a residue
group's pattern's taps on that channel; fetch is the k row reads of a k x k window), and at
least the drain of the previous pass; output rows go out while the next are computed unless write-back is the slower of the
two. The pipeline's register cuts (`params.pipeline_latency`) delay the last row of each band's (tile's, resident set's)
last run once; the other runs end when their last pass is drained (through the MAC array's cuts only), and the next
group's run starts while their last rows go out. With
`prefetch` a streamed group's table and weights are read during the previous group's run, which
then lasts at least as long as those loads; such a run ends at its last issue, the next group's residue
step and RUN_START overlapping its last pass's way to the drain, and the next run's windows are fetched as soon as
this run's last are. With `double` a band's input is read behind the runs of the band before, a channel
at a time while the port is free (from RUN's first cycle, or its prefetch's end, to its last issue; a read in
flight delays the exit), the rest in INPUT_WAIT after the band's last run.
The model assumes memory that answers every request after `latency` cycles and never stalls; the gateware tests check it against `amaranth.sim` (within 3%; typically a few cycles per layer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import descriptor
from .memory_map import ceil_div, row_beats, table_group_beats, weight_group_beats
from .params import FOLD, EngineParams
from .plan import LayerPlan, can_fold, group_channels, group_pass_cycles, group_pass_steps
from .tiling import Tiling, group_buffer_words, layer_tiling, tiled_bytes

DEFAULT_LATENCY = 1  # cycles from a request's acceptance to its first data beat (sim_memory's model)

# Where a layer's cycles outside its passes go (`LayerSchedule.idle`): the descriptor and setup states, the
# layer's first tile's input load, the other tiles' input loads (bands, column tiles; again per resident set;
# double-buffered: the runs' waits for a band read in flight, INPUT_WAIT and the next band's setup),
# the resident sets' weight loads, each group's residue step and the loads it waits for (table, streamed
# weights), and each run's own (its start and first fetch, the MAC array's cuts, the wait for its rows'
# writes or for a prefetch longer than the run; a run that ends at its last issue also counts the next group's
# residue step and RUN_START, which overlap its last pass).
IDLE_CAUSES = ("descriptor", "first_input", "inputs", "set_weights", "group_loads", "runs")


@dataclass
class LayerSchedule:
    name: str
    bytes: dict = field(default_factory=dict)  # tensor -> DRAM bytes: descriptor, weights, tables, inputs, outputs
    cycles: int = 0
    compute_cycles: int = 0  # cycles the MAC array spends in passes
    effectual_macs: int = 0  # MACs with a nonzero weight (padding taps count, as in the field)
    mac_count: int = 1  # m_lanes * x_lanes
    tiling: Tiling | None = None
    mac_active: int = 0  # cycles the MAC array issues a tap step (plan.group_pass_steps per pass)
    idle: dict = field(default_factory=dict)  # cycles - compute_cycles by cause (IDLE_CAUSES), summing to it

    @property
    def read_bytes(self) -> int:
        return sum(v for k, v in self.bytes.items() if k != "outputs")

    @property
    def write_bytes(self) -> int:
        return self.bytes["outputs"]

    @property
    def utilization(self) -> float:
        """Effectual MACs over the MAC slots of all the layer's cycles (loads included)."""
        return self.effectual_macs / max(1, self.cycles * self.mac_count)

    @property
    def compute_utilization(self) -> float:
        """Effectual MACs over the MAC slots of the passes alone."""
        return self.effectual_macs / max(1, self.compute_cycles * self.mac_count)


def _load_cycles(beats: int, latency: int) -> int:
    """Request, latency, then one beat per cycle (bursts are requested back to back)."""
    return beats + latency + 1


def layer_schedule(plan: LayerPlan, params: EngineParams, latency: int = DEFAULT_LATENCY,
                   tiling: Tiling | None = None) -> LayerSchedule:
    """The layer's bytes and cycles run with `tiling` (default: the compiler's, `layer_tiling`)."""
    tiling = tiling or layer_tiling(plan, params)
    c, h, w = plan.in_shape
    m, oh, ow = plan.out_shape
    chans = group_channels(plan, params.m_lanes)
    rbi = row_beats(w, params)
    desc_beats = ceil_div(descriptor.DESCRIPTOR_BYTES, params.beat_bytes)
    wgb, tgb = weight_group_beats(plan, params), table_group_beats(params, plan.fold)
    xl = params.x_lanes // plan.fold  # output pixels per pass

    def band_load(lo: int, hi: int, beats: int | None) -> int:
        """BAND, BAND_ROWS, BAND_LIMITS, BAND_BEATS, BAND_ADDR, then a read per channel (per row of a
        column tile, after TILE_COLS, TILE_SPAN, TILE_HI, TILE_BEATS and TILE_ROW_BEATS)."""
        if beats is not None:
            return 10 + c * (hi - lo) * _load_cycles(beats, latency)
        return 5 + sum(band_reads(lo, hi))

    def band_reads(lo: int, hi: int) -> list[int]:
        """The cycles of each read of a band of full rows: one per channel, or one of every row of the tensor."""
        if (lo, hi) == (0, h) and tiling.chan_rows == h:
            return [_load_cycles(c * h * rbi, latency)]
        return [_load_cycles((hi - lo) * rbi, latency)] * c

    def weights_load() -> int:  # WEIGHTS_REQ / SET_WEIGHTS_REQ, then the beats
        return 1 + _load_cycles(wgb, latency)

    def group_start() -> int:  # RESIDUES (one cycle), the table
        return 1 + _load_cycles(tgb, latency)

    def prefetch(weights: bool) -> int:
        """The shortest a run that prefetches lasts: the next group's table read from RUN_START, its weights'
        (streamed, or a resident set's first tile) read from the table's last beat, and RUN's exit the cycle
        after the last beat."""
        return _load_cycles(tgb, latency) + (_load_cycles(wgb, latency) - 1 if weights else 0) + 1

    def run(lanes: list[int], rows: int, cols: int, overlapped: bool, backlog: int, early: bool = False,
            fetched: bool = False, ahead: int = 0, prefetched: int = 0) -> tuple[int, int, int, int, bool]:
        """(cycles from RUN_START to the run's end, MAC-array pass cycles, its tap steps, the writer's backlog at
        the end, whether the next run's windows are fetched before its RUN_START) of one tile of `cols` output
        columns and one group. `fetched`: this run's windows were fetched during the run before (the MAC
        array holding them until its RUN_START); else `ahead`: its fetch started that many cycles before its
        RUN_START (a band's first run: at GROUPS). `backlog`: the cycles from RUN_START until
        the writer has sent the rows of the runs before (0 when it is idle). Row r reaches the writer after
        its passes, the drain of its last pass and the pipeline's register cuts; the writer sends the rows in
        order. A run ends when the writer has sent its last row or, `overlapped` (a next group of the same band
        follows), when its last pass is drained (through the MAC array's cuts only), its last rows going out
        while the next group runs. `early` (overlapped, its successor's loads prefetched): the run ends the
        cycle after its last step issues (the prefetch landed), stepping the next group's residues, and its
        RUN_START follows: the run's cycles here count to that RUN_START; the next run's windows were fetched after
        this run's. A residue-grouped layer's fetch starts at RUN_START (it needs the group's residue).
        `prefetched`: the shortest the run lasts with its prefetch (`prefetch`). Last, the cycle (from RUN_START)
        its last step issues."""
        row_out = len(lanes) * (ceil_div(cols, params.beat_elems) + 2)
        xg = ceil_div(cols, xl)
        passes = rows * xg
        pass_cycles = group_pass_cycles(plan, lanes[0], params.m_lanes, params.window_depth)
        row_compute = xg * pass_cycles
        # RUN_START, then the first window's fetch: a read per row of the first channel's window (`channel_rows`),
        # the read and window registers; windows fetched ahead: the first step issues the cycle after RUN_START at
        # the soonest (the issue comes `start` + the cuts before it - 1 cycles after RUN_START)
        soonest = 2 - (len(params.mac_cuts) - len(params.step_cuts))
        start = soonest if fetched else max(3 + plan.channel_rows(lanes[0], 0) - ahead, soonest)
        drain = params.m_lanes * plan.fold  # a pass's drain: a folded lane's two channels in turn
        # the row buffers' parity is the row's: a run of odd rows puts its first row in the buffer of the run
        # before's last, so the drain takes the run's first pass once the writer has sent the runs before
        # (`backlog`). A one-pass run ends that much later; in a longer one the MAC array issues the next pass
        # meanwhile, and only its last step waits for the take (it issues after the first pass's result is taken)
        wait = max(0, backlog + 1 - (start + pass_cycles + len(params.mac_cuts))) if rows % 2 else 0
        delay = wait if passes == 1 else max(0, wait + len(params.step_cuts) + 3 - pass_cycles)
        # per row, the cycle the drain takes its last pass (`taken`) and the cycle the writer has sent it (`sent`):
        # a row's passes are taken once the row buffer of its parity is free (the row two before sent), then one
        # pass per pass time, issued from `issue` on. A run of one-pass rows takes its first row itself once the
        # writer has sent the runs before (the MAC array issuing the next row meanwhile), and its second once the
        # drain has let go of the first (a folded drain's 2 x m_lanes cycles outlast that row's issue)
        issue = start + delay + len(params.mac_cuts)
        taken, sent = [issue], [backlog]
        for r in range(rows):
            issue = ready = issue + row_compute
            if r >= 2:
                issue = ready = max(ready, sent[-2] + 2 + (xg - 1) * pass_cycles)
            elif r == 0 and xg == 1 and rows % 2:
                ready = max(ready, backlog + 1)
            elif r == 1:
                ready = max(ready, taken[-1] + drain + 1)
            taken.append(ready)
            sent.append(max(ready + drain + len(params.requant_cuts), sent[-1]) + row_out)
        sent, end = sent[-1], taken[-1]
        # the last step issues 2 + step cuts cycles before the take (its accumulate), a one-pass run's before the
        # wait for that take
        issued = end - len(params.step_cuts) - 2 - (delay if passes == 1 else 0)
        # an overlapped run exits at `drained`, the cycle after the take, once the writer has taken its group
        # (`~pending`): the cycle after it has sent the rows of the runs before
        t = max(end + 2, backlog + 2) if overlapped else sent
        if early:
            # RUN exits the cycle after the last issue (`last_issued`), at the prefetch's last cycle, or the cycle
            # after the writer has sent the rows of the runs before (it takes this run's group: `~pending`),
            # stepping the next group's residues, then RUN_START (a residue-grouped layer's after RESIDUES)
            t = max(issued + 1, prefetched - 1, backlog + 1) + (2 if plan.residue_groups else 1)
        return (t, rows * row_compute, passes * group_pass_steps(plan, lanes[0]), max(0, sent - t),
                overlapped and not plan.residue_groups, issued)

    cycles = 1 + _load_cycles(desc_beats, latency) + 2  # IDLE, the descriptor, SETUP, SETUP_BYTES
    compute = active = 0
    idle = dict.fromkeys(IDLE_CAUSES, 0)
    idle["descriptor"] = cycles
    bands = [(b, min(tiling.band_rows, oh - b * tiling.band_rows)) for b in range(tiling.bands)]
    tile_cols = tiling.col_beats * params.beat_elems
    cols = ([(hi - lo, min(tile_cols, ow - t * tile_cols)) for t, (lo, hi) in enumerate(tiling.col_inputs)]
            if tiling.col_beats else [(None, ow)])
    k = tiling.resident_groups
    sets = [chans[i:i + k] for i in range(0, len(chans), k)] if k else [chans]
    # double-buffered: the loads in order (resident: every band again per set), and the reads of the next one left
    loads_order = [(s, b) for s in range(len(sets)) for b in range(tiling.bands)]
    behind: list[int] = []
    for si, members in enumerate(sets):
        if k:
            # SET_START, the set's weights; prefetched, only its first group's: its first tile's runs read the others'
            loads = 1 + (1 if tiling.prefetch else len(members)) * weights_load()
            cycles += loads
            idle["set_weights"] += loads
        filling = True  # the runs' prefetch reads weights: every tile's when streamed, a resident set's first tile's
        for b, rows in bands:
            for beats, width in cols:
                if not tiling.double:
                    loads = band_load(*tiling.band_inputs[b], beats) + 1  # the tile's input, GROUPS
                else:
                    # the layer's first band is read before its runs, then each band's behind the runs of the band
                    # before; INPUT_WAIT reads what those left (one cycle at least), then the next band's setup
                    # (BAND .. BAND_ADDR), GROUPS
                    order = loads_order.index((si, b))
                    loads = (band_load(*tiling.band_inputs[b], None) if order == 0 else 1 + sum(behind)) + 1
                    behind = []
                    if order + 1 < len(loads_order):
                        behind = band_reads(*tiling.band_inputs[loads_order[order + 1][1]])
                        loads += 5
                cycles += loads
                idle["inputs" if idle["first_input"] else "first_input"] += loads
                pf = prefetch(not k or filling)
                filling = False
                backlog = 0  # the writer's rows of the tile's runs before, left at a run's end
                fetched = False
                early = False  # the previous run ended at its last issue
                for i, lanes in enumerate(members):
                    overlapped = i + 1 < len(members)
                    # this group's loads were read during the previous run (prefetch): RESIDUES only, or nothing
                    # when that run ended early (its cycles count them)
                    if tiling.prefetch and i:
                        setup = 0 if early else 1
                    else:
                        setup = group_start() + (0 if k else weights_load())
                    early = overlapped and tiling.prefetch
                    # a band's first windows are fetched from GROUPS on, the cycle before the group's setup
                    ahead = 0 if i or plan.residue_groups else setup + 1
                    t, steps, issued, left, fetched, last = run(lanes, rows, width, overlapped,
                                                                max(0, backlog - setup), early, fetched, ahead, pf)
                    prefetching = tiling.prefetch and i + 1 < len(members)
                    if prefetching and not early:  # the run reads the next group's loads
                        left = max(0, left - max(0, pf - t))
                        t = max(t, pf)
                    waits = 0
                    if behind:
                        # the next band's reads, one at a time, while the run issues and the port is free (after its
                        # prefetch); RUN exits once the read in flight has ended
                        start = pf - 1 if prefetching else 1
                        n = min(len(behind), max(0, ceil_div(last + 1 - start, behind[0])))
                        if n:
                            exit_at = t - 1 - (1 if early and plan.residue_groups else 0)
                            waits = max(0, start + sum(behind[:n]) - exit_at)
                            left = max(0, left - waits)
                            behind = behind[n:]
                    cycles += setup + t + waits
                    idle["group_loads"] += setup
                    idle["runs"] += t - steps
                    idle["inputs"] += waits
                    backlog = left
                    compute += steps
                    active += issued
    return LayerSchedule(plan.name, tiled_bytes(plan, params, tiling), cycles, compute,
                         int(np.count_nonzero(plan.weight)) * oh * ow, params.mac_count, tiling, mac_active=active,
                         idle=idle)


def fold_plans(plans: list[LayerPlan], params: EngineParams) -> list[LayerPlan]:
    """`plans` with the channel fold (`plan.fold` = FOLD) on each layer the engine can fold
    (`plan.can_fold`) and that then runs in fewer cycles (the compiler's per-layer choice).

    Folding pays where a row leaves x lanes idle (OW below `x_lanes`, or just over a multiple of it).
    A folded layer also needs its rows whole (no column tiles) and a folded group's weights in the
    weight buffer; it moves the same bytes, in lane groups twice as large.
    """
    folded_params = dataclasses.replace(params, fold=FOLD)
    out = []
    for plan in plans:
        if can_fold(plan, params.m_lanes, params.x_lanes):
            folded = dataclasses.replace(plan, fold=FOLD)
            tiling = layer_tiling(folded, folded_params)
            if (not tiling.col_beats and group_buffer_words(folded, folded_params) <= folded_params.weight_mem_depth
                    and layer_schedule(folded, folded_params, tiling=tiling).cycles
                    < layer_schedule(plan, folded_params).cycles):
                plan = folded
        out.append(plan)
    return out


def network_schedule(plans: list[LayerPlan], params: EngineParams, latency: int = DEFAULT_LATENCY) -> list[LayerSchedule]:
    return [layer_schedule(p, params, latency) for p in plans]
