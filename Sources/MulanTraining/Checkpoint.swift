import Foundation
import MulanCore
import MulanTensor

/// Where each source's stream stands: enough to replay it exactly.
public struct SamplerState: Codable, Sendable, Equatable {
    public var streams: [String: Position] = [:]
    public struct Position: Codable, Sendable, Equatable {
        public var epoch: Int
        public var drawn: Int
    }
}

/// A training checkpoint: one safetensors file with the model's tensors under their names, the
/// optimizer's moments under `optimizer.m.NAME` / `optimizer.v.NAME`, and in its metadata the step,
/// the configuration and the sampler state (all JSON strings).
public enum Checkpoint {
    public static let format = "mulan-checkpoint-1"

    public static func fileName(step: Int) -> String { String(format: "checkpoint-%06d.safetensors", step) }

    /// Checkpoints in `directory`, by step, oldest first.
    public static func list(in directory: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("checkpoint-"), name.hasSuffix(".safetensors"),
                  let step = Int(name.dropFirst("checkpoint-".count).dropLast(".safetensors".count)) else { return nil }
            return (step, directory + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }

    public static func save(model: MuLanModel, optimizer: AdamW, step: Int, config: TrainingConfig,
                            sampler: SamplerState, to path: String) throws(MulanError) {
        var tensors: [(name: String, tensor: Tensor)] = model.namedParameters.map { ($0.name, $0.parameter.value) }
        for (name, _) in optimizer.parameters {
            if let m = optimizer.m[name], let v = optimizer.v[name] {
                tensors.append(("optimizer.m." + name, m))
                tensors.append(("optimizer.v." + name, v))
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do {
            let metadata = [
                "format": format, "step": String(step), "optimizer_step": String(optimizer.step),
                "config": String(decoding: try encoder.encode(config), as: UTF8.self),
                "sampler": String(decoding: try encoder.encode(sampler), as: UTF8.self),
            ]
            data = try SafeTensors.encode(tensors, metadata: metadata)
        } catch {
            throw MulanError(.io, "cannot encode checkpoint \(path)", cause: error)
        }
        // NAME.tmp, synced, renamed, folder synced: durable when this returns (Durable).
        do {
            try AtomicFile.write(data, to: path)
        } catch {
            throw MulanError(.io, "cannot write checkpoint \(path)", hint: "check free space and permissions",
                             cause: error)
        }
    }

    public struct Loaded {
        public var step: Int
        public var optimizerStep: Int
        public var config: TrainingConfig
        public var sampler: SamplerState
        public var tensors: [String: Tensor]
    }

    /// Reads a checkpoint. `weightsOnly` skips the optimizer's moments (for using a trained model),
    /// and then a missing sampler state is not an error. `hint` says what to do when the file cannot
    /// be read.
    public static func load(_ path: String, weightsOnly: Bool = false,
                            hint: String = "delete it to resume from the one before") throws(MulanError) -> Loaded {
        let file: (tensors: [String: Tensor], metadata: [String: String])
        do {
            file = try SafeTensors.read(path, include: weightsOnly ? { !$0.hasPrefix("optimizer.") } : nil)
        } catch {
            throw MulanError(.data, "cannot read the checkpoint \(path)", hint: hint, cause: error)
        }
        let meta = file.metadata
        guard meta["format"] == format, let step = meta["step"].flatMap(Int.init), let configJSON = meta["config"],
              weightsOnly || meta["sampler"] != nil else {
            throw MulanError(.data, "\(path) is not a mulan-train checkpoint (metadata format \(meta["format"] ?? "missing"))",
                             hint: "pass a checkpoint-NNNNNN.safetensors written by mulan-train")
        }
        do {
            let config = try JSONDecoder().decode(TrainingConfig.self, from: Data(configJSON.utf8))
            let sampler = try meta["sampler"].map { try JSONDecoder().decode(SamplerState.self, from: Data($0.utf8)) }
            return Loaded(step: step, optimizerStep: meta["optimizer_step"].flatMap(Int.init) ?? step,
                          config: config, sampler: sampler ?? SamplerState(), tensors: file.tensors)
        } catch {
            throw MulanError(.data, "checkpoint \(path) has unreadable metadata", cause: error)
        }
    }

    /// Copies the loaded weights (and, when given, the optimizer state) in; every model tensor must
    /// be present with its shape.
    public static func restore(_ loaded: Loaded, into model: MuLanModel, optimizer: AdamW?, path: String) throws(MulanError) {
        for (name, p) in model.namedParameters {
            guard let t = loaded.tensors[name], t.shape == p.value.shape else {
                throw MulanError(.data, "checkpoint \(path) lacks \(name) with shape \(p.value.shape)",
                                 hint: "the checkpoint was written for another model configuration")
            }
            p.value = t
        }
        guard let optimizer else { return }
        for (name, p) in optimizer.parameters {
            guard let m = loaded.tensors["optimizer.m." + name], let v = loaded.tensors["optimizer.v." + name],
                  m.shape == p.value.shape, v.shape == p.value.shape else {
                throw MulanError(.data, "checkpoint \(path) lacks the optimizer state of \(name)")
            }
            optimizer.m[name] = m
            optimizer.v[name] = v
        }
        optimizer.step = loaded.optimizerStep
    }
}
