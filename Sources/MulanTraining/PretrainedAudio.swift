import Foundation
import MulanCore
import MulanDSP
import MulanTensor

/// Loads a converted pretrained audio model (`mulan_torch.musicnn convert`: musicnn 0.1.0's
/// TensorFlow checkpoints as safetensors) into a `MusicnnTower` or a `VggTower`.
///
/// The file holds the tower's tensors under their names without prefix (`input_bn.weight`,
/// `timbral.0.conv.weight`, …, `backend.logits.bias`; see `MusicnnTower`) and the metadata
/// `format` "mulan-pretrained-audio", `architecture` "musicnn" or "vgg" (the tower's), and the front end's settings
/// `sample_rate` 16000, `n_fft` 512, `hop` 256, `n_mels` 96, `patch_frames` 187, `log`
/// "log10(10000x+1)"; optionally `source`, `licence` and `tags` (a JSON list of the 50 tag names).
/// Every tensor of the tower but `proj` (not in the file: it stays freshly initialized) must be
/// there with its shape. Any other architecture, a missing tensor, a shape mismatch or a differing
/// front-end setting is an error naming the file and what differs.
public enum PretrainedAudio {
    public static let format = "mulan-pretrained-audio"

    /// The front-end settings a musicnn or vgg file must state, as the converter writes them.
    public static let musicnnSettings: [(key: String, value: String)] = [
        ("sample_rate", "16000"), ("n_fft", "512"), ("hop", "256"), ("n_mels", "96"),
        ("patch_frames", String(MusicnnTower.patchFrames)), ("log", LogMelScale.log10Compressed.rawValue),
    ]

    public struct Loaded {
        public var path: String
        public var metadata: [String: String]
        /// The tag names of `backend.logits`' rows, when the file gives them.
        public var tags: [String]?
    }

    /// Reads `path` into `tower` (every tensor but `proj`).
    @discardableResult
    public static func load(_ path: String, into tower: some PretrainedAudioTower) throws(MulanError) -> Loaded {
        let architecture = type(of: tower).architecture
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw MulanError(.io, "the pretrained audio file \(path) does not exist or is not readable",
                             hint: "convert musicnn's weights with `python -m mulan_torch.musicnn convert` (scripts/setup.sh --python does)")
        }
        let file: (tensors: [String: Tensor], metadata: [String: String])
        do {
            file = try SafeTensors.read(path)
        } catch {
            throw MulanError(.data, "cannot read the pretrained audio file \(path)", cause: error)
        }
        let meta = file.metadata
        guard meta["format"] == format else {
            throw MulanError(.data, "\(path) is not a converted pretrained audio model (metadata format \(meta["format"] ?? "missing"), "
                             + "not \(format))", hint: "pass a file written by `python -m mulan_torch.musicnn convert`")
        }
        guard meta["architecture"] == architecture else {
            throw MulanError(.data, "\(path) holds a \(meta["architecture"] ?? "unnamed") model, not \(architecture)",
                             hint: "--audio-tower must match the file's architecture")
        }
        for (key, value) in musicnnSettings where meta[key] != value {
            throw MulanError(.data, "\(path): the front-end setting \(key) is \(meta[key] ?? "missing"), the \(architecture) tower needs \(value)")
        }
        for (name, parameter) in tower.pretrainedParameters {
            guard let t = file.tensors[name] else {
                throw MulanError(.data, "the pretrained audio file \(path) has no tensor \(name)",
                                 hint: "it was written for another architecture or by another converter")
            }
            guard t.shape == parameter.value.shape else {
                throw MulanError(.data, "the pretrained audio file \(path): tensor \(name) has shape \(t.shape), "
                                 + "the \(architecture) tower needs \(parameter.value.shape)")
            }
            guard t.storage.allSatisfy(\.isFinite) else {
                throw MulanError(.data, "the pretrained audio file \(path): tensor \(name) holds non-finite values")
            }
            parameter.value = t
        }
        var tags: [String]?
        if let json = meta["tags"] {
            tags = try? JSONDecoder().decode([String].self, from: Data(json.utf8))
            guard let tags, tags.count == MusicnnTower.tags else {
                throw MulanError(.data, "\(path): metadata tags is not a JSON list of \(MusicnnTower.tags) names")
            }
        }
        return Loaded(path: path, metadata: meta, tags: tags)
    }
}
