/// Retrieval and tagging figures from similarity scores (pure functions, tested against naive versions).
public enum RetrievalMetrics {
    /// 1-based rank of the diagonal entry in each row of the n×n row-major `similarity` (higher is
    /// better), or of each column with `transpose`. Items of the same `group` as the query (clips
    /// whose retrieval text is the same string) count as relevant too and are not ranked against it;
    /// ties with an irrelevant item count against the positive, so a constant model does not look good.
    public static func diagonalRanks(_ similarity: [Float], n: Int, transpose: Bool = false, groups: [Int]? = nil) -> [Int] {
        (0..<n).map { i in
            let positive = similarity[i * n + i]
            var rank = 1
            for j in 0..<n where j != i {
                if let g = groups, g[j] == g[i] { continue }
                let s = transpose ? similarity[j * n + i] : similarity[i * n + j]
                if s >= positive { rank += 1 }
            }
            return rank
        }
    }

    public static func recall(at k: Int, ranks: [Int]) -> Double {
        ranks.isEmpty ? 0 : Double(ranks.filter { $0 <= k }.count) / Double(ranks.count)
    }

    public static func median(_ ranks: [Int]) -> Double {
        guard !ranks.isEmpty else { return 0 }
        let s = ranks.sorted()
        return s.count % 2 == 1 ? Double(s[s.count / 2]) : Double(s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// ROC-AUC of `scores` for binary `labels` (Mann–Whitney U with tied scores sharing ranks);
    /// nil when a class is missing.
    public static func rocAUC(scores: [Float], labels: [Bool]) -> Double? {
        let positives = labels.filter { $0 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] { rankSum += averageRank }
            i = j + 1
        }
        return (rankSum - Double(positives) * Double(positives + 1) / 2) / (Double(positives) * Double(negatives))
    }

    /// Average precision (area under the precision–recall curve as scikit-learn computes it: the
    /// mean of precision at each positive, with tied scores taken as one threshold); nil without positives.
    public static func averagePrecision(scores: [Float], labels: [Bool]) -> Double? {
        let positives = labels.filter { $0 }.count
        guard positives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var tp = 0, seen = 0, ap = 0.0, previousRecall = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j { seen += 1; if labels[order[k]] { tp += 1 } }
            let recall = Double(tp) / Double(positives), precision = Double(tp) / Double(seen)
            ap += (recall - previousRecall) * precision
            previousRecall = recall
            i = j + 1
        }
        return ap
    }
}
