namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>
/// Places one layer's experts onto GPUs. One instance per topology and thread: it owns reusable buffers, so the
/// hot loops allocate nothing and use plain arrays (a 58-layer, 256-GPU case must plan in well under 100 ms).
/// </summary>
/// <remarks>
/// The method (research/eplb.md sections 4 and 5):
/// 1. replica counts by D'Hondt (EPLB's rule; it minimises the max per-replica load, so it also gives the bound);
/// 2. LPT with the slot count of each GPU as a hard limit, never putting a second replica of an expert on a GPU
///    that does not need it (EPLB issue #22);
/// 3. best-improvement swaps between the most loaded GPU and the others (slot counts stay fixed);
/// 4. joint count search: move one replica from a cheap donor expert to an expert on the hottest GPU, put it in the
///    donor's freed slot, re-run the swaps, keep it only if the max load drops (FlashLB's point that counts and
///    packing must be decided together).
/// With a current placement the same moves run from a repaired copy of it, counting weight moves against a budget.
/// </remarks>
internal sealed class LayerSolver
{
    // Relative slack under which a change does not count as an improvement, so float noise cannot ping-pong.
    private const double Epsilon = 1e-9;

    private readonly int _experts;
    private readonly int _gpus;
    private readonly int _slots;
    private readonly int[] _cap;
    private readonly int[] _start;
    private readonly int[] _gpuOfSlot;
    private readonly double[] _inv;
    private readonly double[] _speed;
    private readonly bool _uniformSpeed;
    private readonly double _sumSpeed;
    private readonly double _maxSpeed;
    private readonly int _maxReplicas;
    private readonly int[] _home;
    private readonly int[] _gpuNode;

    private readonly double[] _w;
    private readonly int[] _cnt;
    private readonly int[] _slot;
    private readonly double[] _load;
    private readonly byte[] _on;
    private readonly byte[] _orig;
    private readonly int[] _heap;
    private readonly int[] _items;
    private readonly double[] _keys;
    private readonly int[] _fill;
    private readonly int[] _gpuHeap;
    private readonly int[] _stash;
    private readonly int[] _saveSlot;
    private readonly int[] _saveCnt;
    private readonly double[] _saveLoad;
    private readonly int[] _receivers;
    private readonly int[] _bySlot;
    private readonly int[] _rank;
    private readonly double[] _sorted;
    private readonly int[] _saveBySlot;
    private readonly double[] _saveSorted;
    private readonly int[] _tmpSlot;
    private readonly double[] _tmpPiece;
    private readonly int[] _newSlot;
    private readonly double _stopWithin;
    private double _stop;
    private double _localitySlack;
    private readonly int[] _donors;

    private double _sumW;
    private bool _hasOrig;
    private int _moves;
    private int _budget = int.MaxValue;
    private readonly double _localityTolerance;
    private readonly bool _locality;

    public LayerSolver(IReadOnlyList<ExpertGpu> gpus, int experts, ExpertPlannerOptions options)
    {
        _experts = experts;
        _gpus = gpus.Count;
        _cap = new int[_gpus];
        _gpuNode = new int[_gpus];
        _start = new int[_gpus + 1];
        _inv = new double[_gpus];
        _speed = new double[_gpus];
        for (var g = 0; g < _gpus; g++)
        {
            _cap[g] = gpus[g].Slots;
            _gpuNode[g] = gpus[g].Node;
            _start[g + 1] = _start[g] + gpus[g].Slots;
            _inv[g] = 1.0 / gpus[g].Speed;
            _speed[g] = gpus[g].Speed;
            _sumSpeed += gpus[g].Slots > 0 ? gpus[g].Speed : 0.0;
            _maxSpeed = Math.Max(_maxSpeed, gpus[g].Slots > 0 ? gpus[g].Speed : 0.0);
        }

        _slots = _start[_gpus];
        _uniformSpeed = gpus.All(g => g.Speed == gpus[0].Speed);
        _gpuOfSlot = new int[_slots];
        for (var g = 0; g < _gpus; g++)
        {
            for (var j = _start[g]; j < _start[g + 1]; j++)
            {
                _gpuOfSlot[j] = g;
            }
        }

        var usable = 0;
        for (var g = 0; g < _gpus; g++)
        {
            usable += _cap[g] > 0 ? 1 : 0;
        }

        // An expert needs more replicas than GPUs only when slots outnumber experts x GPUs; then duplicates are
        // unavoidable and allowed.
        _maxReplicas = (long)experts * usable >= _slots ? usable : int.MaxValue;
        _home = HomeNodes(gpus, experts, options);
        _locality = options.Locality == ExpertLocality.PreferGroupNode;
        _localityTolerance = options.LocalityTolerance;

        _w = new double[experts];
        _cnt = new int[experts];
        _slot = new int[_slots];
        _load = new double[_gpus];
        _on = new byte[_gpus * experts];
        _orig = new byte[_gpus * experts];
        _heap = new int[experts];
        _items = new int[_slots];
        _keys = new double[_slots];
        _fill = new int[_gpus];
        _gpuHeap = new int[_gpus];
        _stash = new int[_gpus];
        _saveSlot = new int[_slots];
        _saveCnt = new int[experts];
        _saveLoad = new double[_gpus];
        _receivers = new int[4];
        _bySlot = new int[_slots];
        _rank = new int[_slots];
        _sorted = new double[_slots];
        _saveBySlot = new int[_slots];
        _saveSorted = new double[_slots];
        _tmpSlot = new int[_slots];
        _tmpPiece = new double[_slots];
        _newSlot = new int[_slots];
        _stopWithin = options.StopWithinBound;
        _donors = new int[6];
    }

    public int Slots => _slots;

    /// <summary>Plans one layer from scratch into <paramref name="phy2log"/>; returns the max normalised load.</summary>
    public double PlanFresh(double[] weights, int trials, int[] phy2log)
    {
        SetWeights(weights);
        _hasOrig = false;
        _budget = int.MaxValue;
        _moves = 0;
        Replicate();
        PackLpt();
        FixDuplicates();
        RebuildOrder();
        _stop = StopLevel();
        LocalSearch();
        CountSearch(trials);
        Array.Copy(_slot, phy2log, _slots);
        return MaxNormalised();
    }

    /// <summary>
    /// Plans one layer starting from <paramref name="current"/> (-1 = empty slot), making at most
    /// <paramref name="budget"/> weight moves in all (or the moves validity needs, if more), and stopping once the imbalance is
    /// <paramref name="goodEnoughImbalance"/> or better. Returns the max normalised load;
    /// <paramref name="moves"/> is the number of weights copied.
    /// </summary>
    public double PlanIncremental(
        double[] weights, int[] current, int budget, double goodEnoughImbalance, int trials, int[] phy2log, out int moves)
    {
        SetWeights(weights);
        SetOriginal(current);
        Repair(current);
        RebuildOrder();

        // Every swap past the balance a fresh plan reaches (plus the tolerance) would move weights for nothing.
        _stop = Math.Max(StopLevel(), goodEnoughImbalance * _sumW / _sumSpeed);
        _budget = Math.Max(budget, _moves);
        LocalSearch();
        CountSearch(trials);
        Array.Copy(_slot, phy2log, _slots);
        moves = _moves;
        return MaxNormalised();
    }

    /// <summary>Imbalance (max normalised load / mean) of a given placement; +inf if an expert has no replica.</summary>
    public double Evaluate(double[] weights, int[] placement)
    {
        SetWeights(weights);
        Array.Clear(_cnt);
        for (var j = 0; j < _slots; j++)
        {
            var e = placement[j];
            if ((uint)e < (uint)_experts)
            {
                _cnt[e]++;
            }
        }

        for (var e = 0; e < _experts; e++)
        {
            if (_cnt[e] == 0 && _w[e] > 0)
            {
                return double.PositiveInfinity;
            }
        }

        for (var j = 0; j < _slots; j++)
        {
            _slot[j] = (uint)placement[j] < (uint)_experts ? placement[j] : -1;
        }

        RecomputeLoads();
        return Imbalance(MaxNormalised());
    }

    /// <summary>Max normalised load over the mean (speed-weighted); 1.0 for a layer with no load.</summary>
    public double Imbalance(double maxNormalised) => _sumW > 0 ? maxNormalised / (_sumW / _sumSpeed) : 1.0;

    /// <summary>score.py's bound for this layer: max(1, T*/mean), T* the smallest possible max per-replica load.</summary>
    public double LowerBound(double[] weights)
    {
        SetWeights(weights);
        if (_sumW <= 0)
        {
            return 1.0;
        }

        var tStar = DHondt(int.MaxValue);
        return Math.Max(1.0, tStar / _maxSpeed / (_sumW / _sumSpeed));
    }

    /// <summary>Weight moves of <paramref name="placement"/> against <paramref name="current"/> (per GPU multisets).</summary>
    public int CountMoves(int[] current, int[] placement)
    {
        SetOriginal(current);
        var moves = 0;
        for (var j = 0; j < _slots; j++)
        {
            moves += _orig[(_gpuOfSlot[j] * _experts) + placement[j]] == 0 ? 1 : 0;
        }

        return moves;
    }

    /// <summary>
    /// Renumbers the GPUs of a fresh plan (GPUs of the same slot count and speed are interchangeable) so that each
    /// keeps as many of its current experts as possible: greedy maximum-overlap matching (research/eplb.md 5.5,
    /// the assignment-problem idea of EPLB issue #25, greedy instead of Hungarian to stay O(G^2 s)).
    /// </summary>
    public void AlignToCurrent(int[] current, int[] placement, IReadOnlyList<ExpertGpu> gpus)
    {
        SetOriginal(current);
        var n = 0;
        var pairs = new List<long>();
        var overlaps = new List<int>();
        for (var bin = 0; bin < _gpus; bin++)
        {
            for (var g = 0; g < _gpus; g++)
            {
                if (_cap[bin] != _cap[g] || gpus[bin].Speed != gpus[g].Speed)
                {
                    continue;
                }

                var overlap = 0;
                for (var j = _start[bin]; j < _start[bin + 1]; j++)
                {
                    overlap += _orig[(g * _experts) + placement[j]] != 0 ? 1 : 0;
                }

                // Pairs that keep nothing are left to the fill-in below, so the sort stays small.
                if (overlap > 0)
                {
                    pairs.Add(((long)bin * _gpus) + g);
                    overlaps.Add(-overlap);
                    n++;
                }
            }
        }

        var pairArray = pairs.ToArray();
        var overlapArray = overlaps.ToArray();
        Array.Sort(overlapArray, pairArray);
        var binTaken = new bool[_gpus];
        var gpuTaken = new bool[_gpus];
        var target = new int[_gpus];
        for (var k = 0; k < n; k++)
        {
            var bin = (int)(pairArray[k] / _gpus);
            var g = (int)(pairArray[k] % _gpus);
            if (!binTaken[bin] && !gpuTaken[g])
            {
                binTaken[bin] = gpuTaken[g] = true;
                target[bin] = g;
            }
        }

        // Bins that keep nothing anywhere take the free GPUs of their class (same slots and speed) in order.
        for (var bin = 0; bin < _gpus; bin++)
        {
            for (var g = 0; g < _gpus && !binTaken[bin]; g++)
            {
                if (!gpuTaken[g] && _cap[bin] == _cap[g] && gpus[bin].Speed == gpus[g].Speed)
                {
                    binTaken[bin] = gpuTaken[g] = true;
                    target[bin] = g;
                }
            }
        }

        var copy = (int[])placement.Clone();
        for (var bin = 0; bin < _gpus; bin++)
        {
            var g = target[bin];
            if (!binTaken[bin])
            {
                continue;
            }

            // Keep an expert in the slot it already occupies where possible (a local copy is free, but stable slot
            // numbers make the transfer plan easy to read).
            var dst = _start[g];
            for (var j = _start[bin]; j < _start[bin + 1]; j++)
            {
                placement[dst++] = copy[j];
            }

            for (var a = _start[g]; a < _start[g + 1]; a++)
            {
                if (placement[a] == current[a])
                {
                    continue;
                }

                for (var b = _start[g]; b < _start[g + 1]; b++)
                {
                    if (b != a && placement[b] == current[a] && placement[b] != current[b])
                    {
                        (placement[a], placement[b]) = (placement[b], placement[a]);
                        break;
                    }
                }
            }
        }
    }

    public int Duplicates(int[] placement)
    {
        var dup = 0;
        for (var g = 0; g < _gpus; g++)
        {
            for (var a = _start[g]; a < _start[g + 1]; a++)
            {
                for (var b = _start[g]; b < a; b++)
                {
                    if (placement[a] == placement[b])
                    {
                        dup++;
                        break;
                    }
                }
            }
        }

        return dup;
    }

    private static int[] HomeNodes(IReadOnlyList<ExpertGpu> gpus, int experts, ExpertPlannerOptions options)
    {
        // Home node of each expert for PreferGroupNode: groups go round-robin over nodes by slot capacity, an
        // approximation of EPLB's group packing that does not look at load (locality, not balance, is the point).
        var home = new int[experts];
        if (options.Locality != ExpertLocality.PreferGroupNode || options.ExpertGroups <= 1
            || experts % options.ExpertGroups != 0)
        {
            Array.Fill(home, -1);
            return home;
        }

        var nodes = gpus.Where(g => g.Slots > 0).Select(g => g.Node).Distinct().OrderBy(n => n).ToArray();
        var perGroup = experts / options.ExpertGroups;
        for (var e = 0; e < experts; e++)
        {
            home[e] = nodes.Length == 0 ? -1 : nodes[(e / perGroup) % nodes.Length];
        }

        return home;
    }

    private void SetWeights(double[] weights)
    {
        _sumW = 0;
        for (var e = 0; e < _experts; e++)
        {
            var v = weights[e];
            _w[e] = v > 0 ? v : 0.0;
            _sumW += _w[e];
        }

        _localitySlack = _localityTolerance * _sumW / _sumSpeed;
    }

    private void SetOriginal(int[] current)
    {
        Array.Clear(_orig);
        _hasOrig = true;
        for (var j = 0; j < _slots; j++)
        {
            var e = current[j];
            if ((uint)e < (uint)_experts)
            {
                _orig[(_gpuOfSlot[j] * _experts) + e] = 1;
            }
        }
    }

    private double Piece(int e) => _w[e] / _cnt[e];

    private double MaxNormalised()
    {
        var max = 0.0;
        for (var g = 0; g < _gpus; g++)
        {
            var v = _load[g] * _inv[g];
            if (v > max)
            {
                max = v;
            }
        }

        return max;
    }

    private int ArgMax()
    {
        var best = 0;
        var max = double.NegativeInfinity;
        for (var g = 0; g < _gpus; g++)
        {
            if (_cap[g] == 0)
            {
                continue;
            }

            var v = _load[g] * _inv[g];
            if (v > max)
            {
                max = v;
                best = g;
            }
        }

        return best;
    }

    private void RecomputeLoads()
    {
        Array.Clear(_load);
        for (var j = 0; j < _slots; j++)
        {
            var e = _slot[j];
            if (e >= 0)
            {
                _load[_gpuOfSlot[j]] += Piece(e);
            }
        }
    }

    private void Replicate() => DHondt(_maxReplicas);

    /// <summary>D'Hondt apportionment with a max-heap on w/c; returns the max per-replica load.</summary>
    private double DHondt(int maxReplicas)
    {
        for (var e = 0; e < _experts; e++)
        {
            _cnt[e] = 1;
            _heap[e] = e;
        }

        var size = _experts;
        for (var i = (size / 2) - 1; i >= 0; i--)
        {
            SiftDown(i, size);
        }

        for (var extra = _slots - _experts; extra > 0 && size > 0; extra--)
        {
            var top = _heap[0];
            _cnt[top]++;
            if (_cnt[top] >= maxReplicas)
            {
                _heap[0] = _heap[--size];
            }

            SiftDown(0, size);
        }

        var max = 0.0;
        for (var e = 0; e < _experts; e++)
        {
            max = Math.Max(max, Piece(e));
        }

        return max;
    }

    private bool HeapAbove(int a, int b)
    {
        // w_a/c_a > w_b/c_b without division; ties to the lower id so the result is deterministic.
        var x = _w[a] * _cnt[b];
        var y = _w[b] * _cnt[a];
        return x > y || (x == y && a < b);
    }

    private void SiftDown(int i, int size)
    {
        while (true)
        {
            var l = (2 * i) + 1;
            if (l >= size)
            {
                return;
            }

            var r = l + 1;
            var c = r < size && HeapAbove(_heap[r], _heap[l]) ? r : l;
            if (!HeapAbove(_heap[c], _heap[i]))
            {
                return;
            }

            (_heap[c], _heap[i]) = (_heap[i], _heap[c]);
            i = c;
        }
    }

    private void PackLpt()
    {
        var n = 0;
        for (var e = 0; e < _experts; e++)
        {
            var p = Piece(e);
            for (var k = 0; k < _cnt[e]; k++)
            {
                _items[n] = e;
                _keys[n] = -p;
                n++;
            }
        }

        Array.Sort(_keys, _items, 0, n);
        Array.Clear(_fill);
        Array.Clear(_load);
        Array.Clear(_on);
        if (_uniformSpeed && !_locality)
        {
            PackLptHeap(n);
            return;
        }

        var tolerance = _locality ? _localityTolerance * _sumW / _sumSpeed : 0.0;
        for (var i = 0; i < n; i++)
        {
            var e = _items[i];
            var p = -_keys[i];
            var best = -1;
            var bestValue = double.PositiveInfinity;
            var fallback = -1;
            var fallbackValue = double.PositiveInfinity;
            for (var g = 0; g < _gpus; g++)
            {
                if (_fill[g] == _cap[g])
                {
                    continue;
                }

                var v = (_load[g] + p) * _inv[g];
                if (_on[(g * _experts) + e] != 0)
                {
                    if (v < fallbackValue)
                    {
                        fallbackValue = v;
                        fallback = g;
                    }
                }
                else if (v < bestValue)
                {
                    bestValue = v;
                    best = g;
                }
            }

            if (best < 0)
            {
                best = fallback;
            }
            else if (_locality && _home[e] >= 0)
            {
                best = PreferHome(e, p, best, bestValue + tolerance);
            }

            _slot[_start[best] + _fill[best]] = e;
            _fill[best]++;
            _load[best] += p;
            _on[(best * _experts) + e]++;
        }
    }

    /// <summary>
    /// LPT fills the GPUs with room last; when those already hold the last items' experts it must double one up.
    /// Swap each such duplicate with a slot elsewhere that takes it without creating another (least added load).
    /// </summary>
    private void FixDuplicates()
    {
        if (_maxReplicas == int.MaxValue)
        {
            return;
        }

        var changed = false;
        for (var sa = 0; sa < _slots; sa++)
        {
            var ga = _gpuOfSlot[sa];
            var ea = _slot[sa];
            if (_on[(ga * _experts) + ea] < 2)
            {
                continue;
            }

            var best = -1;
            var bestValue = double.PositiveInfinity;
            for (var sb = 0; sb < _slots; sb++)
            {
                var gb = _gpuOfSlot[sb];
                var eb = _slot[sb];
                if (gb == ga || _on[(gb * _experts) + ea] != 0 || _on[(ga * _experts) + eb] != 0)
                {
                    continue;
                }

                var d = Piece(ea) - Piece(eb);
                var v = Math.Max((_load[ga] - d) * _inv[ga], (_load[gb] + d) * _inv[gb]);
                if (v < bestValue)
                {
                    bestValue = v;
                    best = sb;
                }
            }

            if (best >= 0)
            {
                SwapContents(sa, best);
                continue;
            }

            // No swap helps: the counts do not fit the slot layout (a GPU with nearly as many slots as there are
            // experts). Give the slot to the expert this GPU lacks that gains most from one more replica.
            var f = -1;
            for (var e = 0; e < _experts; e++)
            {
                if (_on[(ga * _experts) + e] == 0 && (f < 0 || _w[e] * (_cnt[f] + 1) > _w[f] * (_cnt[e] + 1)))
                {
                    f = e;
                }
            }

            if (f >= 0)
            {
                _on[(ga * _experts) + ea]--;
                _on[(ga * _experts) + f]++;
                _cnt[ea]--;
                _cnt[f]++;
                _slot[sa] = f;
                changed = true;
            }
        }

        if (changed)
        {
            RecomputeLoads();
        }
    }

    /// <summary>
    /// LPT with equal speeds: the least loaded GPU with room comes off a min-heap (ties to the lower index, as the
    /// linear scan), O(R log G) instead of O(R G) for 512 slots on 256 GPUs.
    /// </summary>
    private void PackLptHeap(int n)
    {
        var size = 0;
        for (var g = 0; g < _gpus; g++)
        {
            if (_cap[g] > 0)
            {
                _gpuHeap[size++] = g;
            }
        }

        // All loads are 0, so index order is already a valid heap.
        for (var i = 0; i < n; i++)
        {
            var e = _items[i];
            var p = -_keys[i];
            var stashed = 0;
            var chosen = -1;
            while (size > 0)
            {
                var g = _gpuHeap[0];
                _gpuHeap[0] = _gpuHeap[--size];
                GpuSiftDown(0, size);
                if (_on[(g * _experts) + e] == 0)
                {
                    chosen = g;
                    break;
                }

                _stash[stashed++] = g;
            }

            var fromStash = chosen < 0;
            if (fromStash)
            {
                // Every GPU with room holds e already: a duplicate is unavoidable; take the least loaded.
                chosen = _stash[0];
            }

            _slot[_start[chosen] + _fill[chosen]] = e;
            _fill[chosen]++;
            _load[chosen] += p;
            _on[(chosen * _experts) + e]++;
            for (var k = fromStash ? 1 : 0; k < stashed; k++)
            {
                GpuPush(_stash[k], ref size);
            }

            if (_fill[chosen] < _cap[chosen])
            {
                GpuPush(chosen, ref size);
            }
        }
    }

    private bool GpuBelow(int a, int b) => _load[a] < _load[b] || (_load[a] == _load[b] && a < b);

    private void GpuPush(int g, ref int size)
    {
        var i = size++;
        _gpuHeap[i] = g;
        while (i > 0)
        {
            var parent = (i - 1) / 2;
            if (!GpuBelow(_gpuHeap[i], _gpuHeap[parent]))
            {
                return;
            }

            (_gpuHeap[i], _gpuHeap[parent]) = (_gpuHeap[parent], _gpuHeap[i]);
            i = parent;
        }
    }

    private void GpuSiftDown(int i, int size)
    {
        while (true)
        {
            var l = (2 * i) + 1;
            if (l >= size)
            {
                return;
            }

            var r = l + 1;
            var c = r < size && GpuBelow(_gpuHeap[r], _gpuHeap[l]) ? r : l;
            if (!GpuBelow(_gpuHeap[c], _gpuHeap[i]))
            {
                return;
            }

            (_gpuHeap[c], _gpuHeap[i]) = (_gpuHeap[i], _gpuHeap[c]);
            i = c;
        }
    }

    private int PreferHome(int e, double p, int best, double limit)
    {
        // The home node's least loaded GPU wins if it is within the tolerance of the global best.
        var home = -1;
        var homeValue = double.PositiveInfinity;
        for (var g = 0; g < _gpus; g++)
        {
            if (_fill[g] == _cap[g] || _on[(g * _experts) + e] != 0 || _gpuNode[g] != _home[e])
            {
                continue;
            }

            var v = (_load[g] + p) * _inv[g];
            if (v < homeValue)
            {
                homeValue = v;
                home = g;
            }
        }

        return home >= 0 && homeValue <= limit ? home : best;
    }

    private int SwapCost(int sa, int sb)
    {
        if (!_hasOrig)
        {
            return 0;
        }

        var ga = _gpuOfSlot[sa];
        var gb = _gpuOfSlot[sb];
        var ea = _slot[sa];
        var eb = _slot[sb];
        return New(ga, eb) + New(gb, ea) - New(ga, ea) - New(gb, eb);
    }

    private int New(int g, int e) => e >= 0 && _orig[(g * _experts) + e] == 0 ? 1 : 0;

    /// <summary>
    /// Best-improvement swaps on the most loaded GPU until none lowers it (slot counts stay fixed). Candidates come
    /// from a window of the slots sorted by piece: a partner's piece must lie in (pa - dMax, pa), where dMax is the
    /// most any other GPU can take without reaching the current max, so late iterations look at a handful of slots.
    /// </summary>
    private void LocalSearch()
    {
        var limit = 20 * _slots;
        for (var iter = 0; iter < limit; iter++)
        {
            // One pass finds the hot GPU and, for equal speeds, the coldest one (dMax = max - min); mixed speeds
            // need a second pass once the max is known.
            var h = 0;
            var nh = double.NegativeInfinity;
            var coldest = double.PositiveInfinity;
            for (var g = 0; g < _gpus; g++)
            {
                if (_cap[g] == 0)
                {
                    continue;
                }

                var v = _load[g] * _inv[g];
                if (v > nh)
                {
                    nh = v;
                    h = g;
                }

                if (v < coldest)
                {
                    coldest = v;
                }
            }

            var loadH = _load[h];
            if (nh <= _stop)
            {
                return;
            }

            var bestM = nh * (1 - Epsilon);
            var invH = _inv[h];
            var dMax = (bestM - coldest) * _speed[h];
            if (!_uniformSpeed)
            {
                dMax = 0.0;
                for (var g = 0; g < _gpus; g++)
                {
                    if (g != h && _cap[g] > 0)
                    {
                        dMax = Math.Max(dMax, (bestM * _speed[g]) - _load[g]);
                    }
                }
            }

            var bestA = -1;
            var bestB = -1;
            for (var sa = _start[h]; sa < _start[h + 1]; sa++)
            {
                var ea = _slot[sa];
                var rankA = _rank[sa];
                var pa = _sorted[rankA];

                // Scan outwards from the ideal partner (d = dMax / 2 evens the hot GPU with the coldest). Going up,
                // d shrinks and the hot GPU keeps at least loadH - d; going down, d grows and the coldest GPU gets
                // at least coldest + d. Either side stops once that reaches the best max found so far.
                var centre = LowerRank(pa - (0.5 * dMax), rankA);
                for (var k = centre; k < _slots; k++)
                {
                    var d = pa - _sorted[k];
                    if (d <= 0 || (loadH - d) * invH >= bestM)
                    {
                        break;
                    }

                    Consider(h, loadH, nh, sa, ea, k, d, ref bestM, ref bestA, ref bestB);
                }

                for (var k = centre - 1; k >= 0; k--)
                {
                    var d = pa - _sorted[k];
                    if (d >= (_uniformSpeed ? (bestM - coldest) * _speed[h] : dMax))
                    {
                        break;
                    }

                    Consider(h, loadH, nh, sa, ea, k, d, ref bestM, ref bestA, ref bestB);
                }
            }

            if (bestA < 0)
            {
                return;
            }

            ApplySwap(bestA, bestB);
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void Consider(int h, double loadH, double nh, int sa, int ea, int k, double d, ref double bestM, ref int bestA, ref int bestB)
    {
        var sb = _bySlot[k];
        var g = _gpuOfSlot[sb];
        if (g == h)
        {
            return;
        }

        var m = Math.Max((loadH - d) * _inv[h], (_load[g] + d) * _inv[g]);
        if (m >= bestM || _on[(g * _experts) + ea] != 0 || _on[(h * _experts) + _slot[sb]] != 0)
        {
            return;
        }

        // Locality is soft: a swap that takes a replica off its group's home node must buy more balance than the
        // tolerance.
        if (_locality && nh - m < _localitySlack && LeavesHome(ea, h, _slot[sb], g))
        {
            return;
        }

        if (_budget == int.MaxValue || _moves + SwapCost(sa, sb) <= _budget)
        {
            bestM = m;
            bestA = sa;
            bestB = sb;
        }
    }

    /// <summary>First rank in [0, hi] whose piece exceeds <paramref name="value"/> (binary search).</summary>
    private int LowerRank(double value, int hi)
    {
        var lo = 0;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_sorted[mid] <= value)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>Sorts the slots by piece (after packing or repair, when every piece may have changed).</summary>
    private void RebuildOrder()
    {
        for (var j = 0; j < _slots; j++)
        {
            _bySlot[j] = j;
            _sorted[j] = Piece(_slot[j]);
        }

        Array.Sort(_sorted, _bySlot, 0, _slots);
        for (var k = 0; k < _slots; k++)
        {
            _rank[_bySlot[k]] = k;
        }
    }

    /// <summary>Re-sorts after experts a and b changed replica counts: O(R) merge instead of a full sort.</summary>
    private void ReorderAfterCountChange(int a, int b)
    {
        var n = 0;
        for (var k = 0; k < _slots; k++)
        {
            var sl = _bySlot[k];
            var e = _slot[sl];
            if (e != a && e != b)
            {
                _tmpSlot[n] = sl;
                _tmpPiece[n] = _sorted[k];
                n++;
            }
        }

        // The moved experts' slots, the smaller piece first (each expert's pieces are equal).
        var first = Piece(a) <= Piece(b) ? a : b;
        var second = first == a ? b : a;
        var m = 0;
        for (var pass = 0; pass < 2; pass++)
        {
            var e = pass == 0 ? first : second;
            for (var j = 0; j < _slots; j++)
            {
                if (_slot[j] == e)
                {
                    _newSlot[m++] = j;
                }
            }
        }

        int i = 0, q = 0, o = 0;
        while (i < n || q < m)
        {
            var takeOld = q >= m || (i < n && _tmpPiece[i] <= Piece(_slot[_newSlot[q]]));
            if (takeOld)
            {
                _bySlot[o] = _tmpSlot[i];
                _sorted[o] = _tmpPiece[i];
                i++;
            }
            else
            {
                _bySlot[o] = _newSlot[q];
                _sorted[o] = Piece(_slot[_newSlot[q]]);
                q++;
            }

            _rank[_bySlot[o]] = o;
            o++;
        }
    }

    private bool LeavesHome(int ea, int h, int eb, int g)
    {
        var before = (_home[ea] == _gpuNode[h] ? 1 : 0) + (_home[eb] == _gpuNode[g] ? 1 : 0);
        var after = (_home[ea] == _gpuNode[g] ? 1 : 0) + (_home[eb] == _gpuNode[h] ? 1 : 0);
        return after < before;
    }

    /// <summary>Share of slots whose expert sits on its group's home node (1.0 when locality is off).</summary>
    public double HomeShare(int[] placement)
    {
        if (!_locality)
        {
            return 1.0;
        }

        var home = 0;
        for (var j = 0; j < _slots; j++)
        {
            home += _home[placement[j]] == _gpuNode[_gpuOfSlot[j]] ? 1 : 0;
        }

        return _slots == 0 ? 1.0 : (double)home / _slots;
    }

    private void ApplySwap(int sa, int sb)
    {
        _moves += SwapCost(sa, sb);
        SwapContents(sa, sb);
        var ra = _rank[sa];
        var rb = _rank[sb];
        _bySlot[ra] = sb;
        _bySlot[rb] = sa;
        _rank[sa] = rb;
        _rank[sb] = ra;
    }

    private void SwapContents(int sa, int sb)
    {
        var ga = _gpuOfSlot[sa];
        var gb = _gpuOfSlot[sb];
        var ea = _slot[sa];
        var eb = _slot[sb];
        var d = Piece(ea) - Piece(eb);
        _load[ga] -= d;
        _load[gb] += d;
        _on[(ga * _experts) + ea]--;
        _on[(ga * _experts) + eb]++;
        _on[(gb * _experts) + eb]--;
        _on[(gb * _experts) + ea]++;
        _slot[sa] = eb;
        _slot[sb] = ea;
    }

    /// <summary>Joint count/packing search: shift one replica at a time towards the hottest GPU's experts.</summary>
    private void CountSearch(int trials)
    {
        if (_sumW <= 0 || _slots <= _experts)
        {
            return;
        }

        for (var t = 0; t < trials; t++)
        {
            var current = MaxNormalised();
            if (current <= _stop || !TryCountMove(current))
            {
                return;
            }
        }
    }

    /// <summary>
    /// Search stops once the max load is within <see cref="ExpertPlannerOptions.StopWithinBound"/> of the bound:
    /// the last 0.01 % is not worth the swaps (and the weight moves) it costs.
    /// </summary>
    private double StopLevel() => _sumW <= 0 ? double.PositiveInfinity : DHondtBoundNormalised() * (1 + _stopWithin);

    private double DHondtBoundNormalised()
    {
        // Both are bounds for any placement without duplicates: the mean, and D'Hondt's max per-replica load
        // (the smallest possible heaviest piece, which some GPU must carry).
        Array.Copy(_cnt, _saveCnt, _experts);
        var tStar = DHondt(_maxReplicas);
        Array.Copy(_saveCnt, _cnt, _experts);
        return Math.Max(_sumW / _sumSpeed, tStar / _maxSpeed);
    }

    private bool TryCountMove(double current)
    {
        var h = ArgMax();
        var receivers = 0;
        for (var s = _start[h]; s < _start[h + 1] && receivers < _receivers.Length; s++)
        {
            var e = _slot[s];
            if (_cnt[e] < _maxReplicas && Array.IndexOf(_receivers, e, 0, receivers) < 0)
            {
                _receivers[receivers++] = e;
            }
        }

        // Heaviest piece first: splitting it frees the most room on the hot GPU.
        for (var i = 1; i < receivers; i++)
        {
            for (var k = i; k > 0 && Piece(_receivers[k]) > Piece(_receivers[k - 1]); k--)
            {
                (_receivers[k], _receivers[k - 1]) = (_receivers[k - 1], _receivers[k]);
            }
        }

        var donors = SelectDonors();
        for (var r = 0; r < Math.Min(receivers, 2); r++)
        {
            var b = _receivers[r];
            for (var d = 0; d < donors; d++)
            {
                var a = _donors[d];
                if (a == b)
                {
                    continue;
                }

                var slot = DonorSlot(a, b);
                if (slot < 0)
                {
                    continue;
                }

                var cost = _hasOrig ? New(_gpuOfSlot[slot], b) - New(_gpuOfSlot[slot], a) : 0;
                if (_budget != int.MaxValue && _moves + cost > _budget)
                {
                    continue;
                }

                Save();
                var savedMoves = _moves;
                var g = _gpuOfSlot[slot];
                _on[(g * _experts) + a]--;
                _on[(g * _experts) + b]++;
                _slot[slot] = b;
                _cnt[a]--;
                _cnt[b]++;
                _moves += cost;
                RecomputeLoads();
                ReorderAfterCountChange(a, b);
                LocalSearch();
                if (MaxNormalised() < current * (1 - Epsilon))
                {
                    return true;
                }

                Restore();
                _moves = savedMoves;
            }
        }

        return false;
    }

    private int SelectDonors()
    {
        // Donors lose a replica; the cheapest are those whose pieces stay smallest after the loss.
        var n = 0;
        for (var e = 0; e < _experts; e++)
        {
            if (_cnt[e] < 2)
            {
                continue;
            }

            var after = _w[e] / (_cnt[e] - 1);
            if (n < _donors.Length)
            {
                _donors[n++] = e;
            }
            else if (after < _w[_donors[n - 1]] / (_cnt[_donors[n - 1]] - 1))
            {
                _donors[n - 1] = e;
            }
            else
            {
                continue;
            }

            for (var k = n - 1; k > 0; k--)
            {
                var x = _donors[k];
                var y = _donors[k - 1];
                if (_w[x] / (_cnt[x] - 1) >= _w[y] / (_cnt[y] - 1))
                {
                    break;
                }

                (_donors[k], _donors[k - 1]) = (y, x);
            }
        }

        return n;
    }

    private int DonorSlot(int a, int b)
    {
        // The donor's replica on the least loaded GPU that does not hold the receiver yet.
        var best = -1;
        var bestLoad = double.PositiveInfinity;
        for (var j = 0; j < _slots; j++)
        {
            if (_slot[j] != a)
            {
                continue;
            }

            var g = _gpuOfSlot[j];
            var v = _load[g] * _inv[g];
            if (_on[(g * _experts) + b] == 0 && v < bestLoad)
            {
                bestLoad = v;
                best = j;
            }
        }

        return best;
    }

    private void Save()
    {
        Array.Copy(_slot, _saveSlot, _slots);
        Array.Copy(_cnt, _saveCnt, _experts);
        Array.Copy(_load, _saveLoad, _gpus);
        Array.Copy(_bySlot, _saveBySlot, _slots);
        Array.Copy(_sorted, _saveSorted, _slots);
    }

    private void Restore()
    {
        for (var j = 0; j < _slots; j++)
        {
            var now = _slot[j];
            var was = _saveSlot[j];
            if (now != was)
            {
                var g = _gpuOfSlot[j] * _experts;
                _on[g + now]--;
                _on[g + was]++;
            }
        }

        Array.Copy(_saveSlot, _slot, _slots);
        Array.Copy(_saveCnt, _cnt, _experts);
        Array.Copy(_saveLoad, _load, _gpus);
        Array.Copy(_saveBySlot, _bySlot, _slots);
        Array.Copy(_saveSorted, _sorted, _slots);
        for (var k = 0; k < _slots; k++)
        {
            _rank[_bySlot[k]] = k;
        }
    }

    /// <summary>
    /// Turns the current placement into a valid one with the fewest copies: keep what survives, drop duplicates,
    /// free slots for experts that lost their last replica, then fill empty slots by D'Hondt.
    /// </summary>
    private void Repair(int[] current)
    {
        Array.Clear(_cnt);
        Array.Clear(_on);
        _moves = 0;
        for (var j = 0; j < _slots; j++)
        {
            var e = current[j];
            var g = _gpuOfSlot[j];
            if ((uint)e >= (uint)_experts || (_on[(g * _experts) + e] != 0 && _maxReplicas != int.MaxValue))
            {
                _slot[j] = -1;
                continue;
            }

            _slot[j] = e;
            _cnt[e]++;
            _on[(g * _experts) + e]++;
        }

        var empty = 0;
        var orphans = 0;
        for (var j = 0; j < _slots; j++)
        {
            empty += _slot[j] < 0 ? 1 : 0;
        }

        for (var e = 0; e < _experts; e++)
        {
            orphans += _cnt[e] == 0 ? 1 : 0;
        }

        // Not enough empty slots for the orphans: take a replica from the expert that can best spare one.
        while (orphans > empty)
        {
            var victim = -1;
            var victimAfter = double.PositiveInfinity;
            for (var e = 0; e < _experts; e++)
            {
                if (_cnt[e] >= 2 && _w[e] / (_cnt[e] - 1) < victimAfter)
                {
                    victimAfter = _w[e] / (_cnt[e] - 1);
                    victim = e;
                }
            }

            var at = Array.LastIndexOf(_slot, victim);
            _on[(_gpuOfSlot[at] * _experts) + victim]--;
            _slot[at] = -1;
            _cnt[victim]--;
            empty++;
        }

        RecomputeLoadsWithFutureCounts();

        // Orphans, heaviest first, to the least loaded GPU with an empty slot.
        while (orphans > 0)
        {
            var e = -1;
            for (var x = 0; x < _experts; x++)
            {
                if (_cnt[x] == 0 && (e < 0 || _w[x] > _w[e]))
                {
                    e = x;
                }
            }

            PlaceInEmpty(e);
            orphans--;
            empty--;
        }

        // Remaining empty slots: the expert with the largest per-replica load that the GPU does not hold.
        for (var j = 0; j < _slots; j++)
        {
            if (_slot[j] >= 0)
            {
                continue;
            }

            var g = _gpuOfSlot[j];
            var best = -1;
            var bestPiece = double.NegativeInfinity;
            var fallback = 0;
            for (var e = 0; e < _experts; e++)
            {
                var p = _w[e] / _cnt[e];
                if (_on[(g * _experts) + e] == 0 && p > bestPiece)
                {
                    bestPiece = p;
                    best = e;
                }

                fallback = _w[e] / _cnt[e] > _w[fallback] / _cnt[fallback] ? e : fallback;
            }

            best = best < 0 ? fallback : best;
            _slot[j] = best;
            _cnt[best]++;
            _on[(g * _experts) + best]++;
            _moves += New(g, best);
        }

        RecomputeLoads();
    }

    private void RecomputeLoadsWithFutureCounts()
    {
        // Orphans will have one replica; treat count 0 as 1 so pieces are finite while placing them.
        Array.Clear(_load);
        for (var j = 0; j < _slots; j++)
        {
            var e = _slot[j];
            if (e >= 0)
            {
                _load[_gpuOfSlot[j]] += _w[e] / _cnt[e];
            }
        }
    }

    private void PlaceInEmpty(int e)
    {
        var best = -1;
        var bestValue = double.PositiveInfinity;
        for (var j = 0; j < _slots; j++)
        {
            if (_slot[j] >= 0)
            {
                continue;
            }

            var g = _gpuOfSlot[j];
            var v = (_load[g] + _w[e]) * _inv[g];
            if (v < bestValue)
            {
                bestValue = v;
                best = j;
            }
        }

        var gb = _gpuOfSlot[best];
        _slot[best] = e;
        _cnt[e] = 1;
        _on[(gb * _experts) + e]++;
        _load[gb] += _w[e];
        _moves += New(gb, e);
    }
}
