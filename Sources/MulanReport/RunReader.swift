import Foundation
import MulanCore
import MulanRecords

/// The curves of a training run, read from `RUN_DIR/metrics.jsonl` (written by `Trainer`: a line
/// per logged step with `loss` and `temperature`; a line per evaluation with `split`, `loss`,
/// `t2a_recall_at_10`, `a2t_recall_at_10`, `tagging_roc_auc`). Each curve keeps at most about 1500
/// points however long the run, so memory stays bounded.
struct RunFigures {
    var directory: String
    var trainLoss = DecimatedSeries()
    var temperature = DecimatedSeries()
    /// Evaluation curves by split name.
    var evalLoss: [String: DecimatedSeries] = [:]
    var textToAudioR10: [String: DecimatedSeries] = [:]
    var audioToTextR10: [String: DecimatedSeries] = [:]
    var taggingAUC: [String: DecimatedSeries] = [:]
    var lines = 0
    /// Lines that are not a JSON object with a step (e.g. a line cut short while training writes).
    var unreadableLines = 0
    var lastStep: Int?
    var evaluationSplits: [String] { ShardReader.splitOrder(Set(textToAudioR10.keys).union(evalLoss.keys)) }
}

enum RunReader {
    static func read(directory: String) throws(MulanError) -> RunFigures {
        let path = directory + "/metrics.jsonl"
        let reader = try ByteReader(path: path)
        var run = RunFigures(directory: directory)
        while let (bytes, _) = try reader.nextLine(maxLength: 1 << 20) {
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            run.lines += 1
            guard let line = MetricsLine.parse(bytes) else {
                run.unreadableLines += 1
                continue
            }
            let step = Double(line.step)
            run.lastStep = max(run.lastStep ?? line.step, line.step)
            if let split = line.split {
                if let v = finite(line.loss) { run.evalLoss[split, default: .init()].append(x: step, y: v) }
                if let v = finite(line.t2aRecallAt10) { run.textToAudioR10[split, default: .init()].append(x: step, y: v) }
                if let v = finite(line.a2tRecallAt10) { run.audioToTextR10[split, default: .init()].append(x: step, y: v) }
                if let v = finite(line.taggingROCAUC) { run.taggingAUC[split, default: .init()].append(x: step, y: v) }
            } else {
                if let v = finite(line.loss) { run.trainLoss.append(x: step, y: v) }
                if let v = finite(line.temperature) { run.temperature.append(x: step, y: v) }
            }
        }
        return run
    }

    static func finite(_ value: Double?) -> Double? { value.flatMap { $0.isFinite ? $0 : nil } }
}

/// The parts of a `mulan-eval --json` report the page shows.
struct EvalFigures: Decodable {
    var checkpoint: String?
    var step: Int?
    var groundTruth: String?
    var tagging: TaggingReport?
    var retrieval: CaptionRetrievalReport?

    enum CodingKeys: String, CodingKey {
        case checkpoint, step, groundTruth = "ground_truth", tagging, retrieval
    }

    static func read(path: String) throws(MulanError) -> EvalFigures {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MulanError(.io, "cannot read \(path)", hint: "check --eval (the file mulan-eval --json wrote)")
        }
        do {
            return try JSONDecoder().decode(EvalFigures.self, from: data)
        } catch {
            throw MulanError(.data, "\(path) is not a mulan-eval --json report",
                             hint: "pass the file written by mulan-eval --json", cause: error)
        }
    }
}
