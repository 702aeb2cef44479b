namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>
/// MoE expert placement: a pure function of per-layer expert loads, the surviving topology and, optionally, the
/// current placement (research/eplb.md; the planner shape follows deepseek-ai/EPLB's <c>rebalance_experts</c>,
/// without its divisibility asserts, node confinement, duplicate replicas or full reshuffles).
/// </summary>
public static class ExpertPlanner
{
    /// <summary>Plans every layer. Throws <see cref="ArgumentException"/> when the input cannot be placed.</summary>
    public static ExpertPlan Plan(ExpertPlanRequest request, ExpertPlannerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        options ??= new ExpertPlannerOptions();
        var experts = Validate(request, options);
        var layers = request.Loads.Count;
        var solver = new LayerSolver(request.Gpus, experts, options);
        var phy2log = new int[layers][];
        var imbalance = new double[layers];
        var lowerBound = new double[layers];
        var moves = new int[layers];
        var duplicates = new int[layers];
        var homeShare = new double[layers];
        var before = request.Current is null ? null : new double[layers];
        var fresh = new int[solver.Slots];
        for (var l = 0; l < layers; l++)
        {
            var w = request.Loads[l];
            lowerBound[l] = solver.LowerBound(w);
            var plan = new int[solver.Slots];
            if (request.Current is null)
            {
                imbalance[l] = solver.Imbalance(solver.PlanFresh(w, options.CountSearchTrials, plan));
            }
            else
            {
                var current = request.Current[l];
                before![l] = solver.Evaluate(w, current);
                (imbalance[l], moves[l]) = PlanAgainstCurrent(solver, w, current, request.Gpus, options, plan, fresh);
            }

            phy2log[l] = plan;
            duplicates[l] = solver.Duplicates(plan);
            homeShare[l] = solver.HomeShare(plan);
        }

        return new ExpertPlan
        {
            Phy2Log = phy2log,
            Imbalance = imbalance,
            LowerBound = lowerBound,
            ImbalanceBefore = before,
            WeightMoves = moves,
            DuplicatesOnGpu = duplicates,
            HomeNodeShare = homeShare,
        };
    }

    private static (double Imbalance, int Moves) PlanAgainstCurrent(
        LayerSolver solver,
        double[] w,
        int[] current,
        IReadOnlyList<ExpertGpu> gpus,
        ExpertPlannerOptions options,
        int[] plan,
        int[] fresh)
    {
        // Two candidates (research/eplb.md 5.5): repair the current placement and improve it within the budget, or
        // plan from scratch and renumber the GPUs to keep as much as possible. For a given balance, fewer moves win.
        var budget = options.MaxWeightMovesPerLayer ?? int.MaxValue;
        var scratch = solver.Imbalance(solver.PlanFresh(w, options.CountSearchTrials, fresh));
        var incremental = solver.Imbalance(solver.PlanIncremental(
            w, current, budget, scratch + options.MigrationBalanceTolerance, options.CountSearchTrials, plan, out var incrementalMoves));
        solver.AlignToCurrent(current, fresh, gpus);
        var scratchMoves = solver.CountMoves(current, fresh);

        // For a given balance (within the tolerance of the better one), the fewer moves win; a fresh plan that
        // breaks the budget never does (unless the incremental plan needed even more moves for validity).
        var best = Math.Min(scratch, incremental);
        var scratchOk = (scratchMoves <= budget || scratchMoves <= incrementalMoves) && scratch <= best + options.MigrationBalanceTolerance;
        var incrementalOk = incremental <= best + options.MigrationBalanceTolerance;
        var scratchWins = scratchOk && (!incrementalOk || scratchMoves < incrementalMoves);
        if (!scratchWins)
        {
            return (incremental, incrementalMoves);
        }

        Array.Copy(fresh, plan, plan.Length);
        return (scratch, scratchMoves);
    }

    private static int Validate(ExpertPlanRequest request, ExpertPlannerOptions options)
    {
        if (request.Loads.Count == 0)
        {
            throw new ArgumentException("no layers to plan", nameof(request));
        }

        var experts = request.Loads[0].Length;
        if (experts == 0)
        {
            throw new ArgumentException("no experts to place", nameof(request));
        }

        for (var l = 0; l < request.Loads.Count; l++)
        {
            if (request.Loads[l].Length != experts)
            {
                throw new ArgumentException(
                    $"layer {l} has {request.Loads[l].Length} experts, layer 0 has {experts}", nameof(request));
            }
        }

        var slots = 0;
        var gpusWithSlots = 0;
        foreach (var gpu in request.Gpus)
        {
            if (gpu.Slots < 0 || !(gpu.Speed > 0) || double.IsInfinity(gpu.Speed))
            {
                throw new ArgumentException($"bad GPU {gpu}: slots must be >= 0 and speed > 0", nameof(request));
            }

            slots += gpu.Slots;
            gpusWithSlots += gpu.Slots > 0 ? 1 : 0;
        }

        if (slots < experts)
        {
            // research/eplb.md 5.4: say what would fit instead of asserting.
            var perGpu = gpusWithSlots == 0 ? experts : (experts + gpusWithSlots - 1) / gpusWithSlots;
            throw new ArgumentException(
                $"{slots} slots cannot hold {experts} experts; needs at least {perGpu} slots per GPU on {gpusWithSlots} GPUs",
                nameof(request));
        }

        if (request.Current is { } current)
        {
            if (current.Count != request.Loads.Count)
            {
                throw new ArgumentException(
                    $"current placement has {current.Count} layers, loads have {request.Loads.Count}", nameof(request));
            }

            for (var l = 0; l < current.Count; l++)
            {
                if (current[l].Length != slots)
                {
                    throw new ArgumentException(
                        $"current placement layer {l} has {current[l].Length} slots, topology has {slots}", nameof(request));
                }
            }
        }

        if (options.CountSearchTrials < 0 || options.MaxWeightMovesPerLayer < 0 || options.LocalityTolerance < 0)
        {
            throw new ArgumentException("planner options must not be negative", nameof(options));
        }

        return experts;
    }
}
