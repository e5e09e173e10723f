import Foundation
import MulanCore
import MulanDSP
import MulanTensor
import MulanTestSupport
@testable import MulanTraining
import Testing

/// Writing and reading converted musicnn files with the spec's names (random values).
enum MusicnnFixture {
    /// The spec's table: every tensor of a converted musicnn file and its shape.
    static let specShapes: [(String, [Int])] = {
        var all: [(String, [Int])] = []
        func bn(_ name: String, _ c: Int) {
            for s in ["weight", "bias", "running_mean", "running_var"] { all.append(("\(name).\(s)", [c])) }
        }
        func conv(_ name: String, _ shape: [Int]) {
            all.append(("\(name).conv.weight", shape))
            all.append(("\(name).conv.bias", [shape[0]]))
            bn("\(name).bn", shape[0])
        }
        bn("input_bn", 1)
        conv("timbral.0", [204, 1, 38, 7])
        conv("timbral.1", [204, 1, 67, 7])
        conv("temporal.0", [51, 1, 1, 128])
        conv("temporal.1", [51, 1, 1, 64])
        conv("temporal.2", [51, 1, 1, 32])
        conv("midend.0", [64, 561, 7])
        conv("midend.1", [64, 64, 7])
        conv("midend.2", [64, 64, 7])
        bn("backend.pool_bn", 1506)
        all.append(("backend.dense.weight", [200, 1506]))
        all.append(("backend.dense.bias", [200]))
        bn("backend.dense_bn", 200)
        all.append(("backend.logits.weight", [50, 200]))
        all.append(("backend.logits.bias", [50]))
        return all
    }()

    static let metadata: [String: String] = [
        "format": "mulan-pretrained-audio", "architecture": "musicnn", "source": "test: random values",
        "licence": "ISC", "sample_rate": "16000", "n_fft": "512", "hop": "256", "n_mels": "96",
        "patch_frames": "187", "log": "log10(10000x+1)",
        "tags": "[" + (0..<50).map { "\"tag \($0)\"" }.joined(separator: ",") + "]",
    ]

    /// Random tensors with the spec's names and shapes: convolution and dense weights of He scale,
    /// biases and BN shifts small, BN scales near 1 and variances in [0.5, 1.5].
    static func randomTensors(seed: UInt64) -> [(name: String, tensor: Tensor)] {
        var random = RandomSource(seed: seed)
        return specShapes.map { name, shape in
            let n = shape.reduce(1, *)
            var t = Tensor(shape: shape)
            for i in 0..<n {
                let u = random.unitFloat()
                if name.hasSuffix("running_var") {
                    t.storage[i] = 0.5 + u
                } else if name.hasSuffix("bn.weight") || name == "input_bn.weight" {
                    t.storage[i] = 0.8 + 0.4 * u
                } else if name.hasSuffix(".weight") {
                    t.storage[i] = random.normal() * (2 / Float(n / shape[0])).squareRoot()
                } else {
                    t.storage[i] = (u - 0.5) * 0.2
                }
            }
            return (name, t)
        }
    }

    static func write(_ path: String, tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = metadata) throws {
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }
}

@Suite("musicnn audio tower")
struct MusicnnTowerTests {
    @Test func parameterNamesAndShapesFollowTheSpec() {
        var random = RandomSource(seed: 1)
        let tower = MusicnnTower(embeddingDim: 32, random: &random)
        let names = tower.namedParameters.map(\.name), shapes = tower.namedParameters.map(\.parameter.value.shape)
        let expected = MusicnnFixture.specShapes + [("proj.weight", [32, 200]), ("proj.bias", [32])]
        #expect(names == expected.map(\.0))
        #expect(shapes == expected.map(\.1))
        #expect(tower.pretrainedParameters.count == MusicnnFixture.specShapes.count)
        // Batch norms use TensorFlow's ε.
        #expect(tower.inputBN.epsilon == 0.001 && tower.midend[2].bn.epsilon == 0.001 && tower.denseBN.epsilon == 0.001)
        // Which parameters train at each depth.
        #expect(MusicnnTower.trains("proj.weight", trainedBlocks: 0))
        #expect(!MusicnnTower.trains("backend.dense.weight", trainedBlocks: 0))
        #expect(MusicnnTower.trains("backend.dense.weight", trainedBlocks: 1))
        #expect(!MusicnnTower.trains("midend.0.conv.weight", trainedBlocks: 1))
        #expect(MusicnnTower.trains("midend.0.conv.weight", trainedBlocks: 2))
        #expect(!MusicnnTower.trains("input_bn.weight", trainedBlocks: 2))
        #expect(MusicnnTower.trains("input_bn.weight", trainedBlocks: 3))
        #expect(!MusicnnTower.trains("backend.logits.weight", trainedBlocks: 3))
    }

    /// Random weights with the spec's names, written by the test, loaded as `--audio-init` loads
    /// them; the taggram and penultimate features equal an independent NumPy forward pass of
    /// musicnn's TensorFlow graph (Tests/tools/musicnn_reference.py).
    @Test func warmStartMatchesAnIndependentNumPyForward() throws {
        let dir = TempDir("musicnn-numpy")
        let file = dir.file("random.safetensors")
        let tensors = MusicnnFixture.randomTensors(seed: 7)
        try MusicnnFixture.write(file, tensors: tensors)
        var random = RandomSource(seed: 2)
        let tower = MusicnnTower(embeddingDim: 16, random: &random)
        let projBefore = tower.proj.weight.value
        let loaded = try PretrainedAudio.load(file, into: tower)
        #expect(loaded.tags?.count == 50 && loaded.tags?.first == "tag 0")
        let byName = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value) })
        for (name, t) in tensors { #expect(byName[name] == t, "\(name) not loaded") }
        #expect(tower.proj.weight.value == projBefore, "proj is not in the file and keeps its initialization")

        // Three patches of a log-mel-like input (values 0…4, as log10(10000x + 1) gives).
        var input = Tensor(shape: [3, 96, 187])
        var r = RandomSource(seed: 3)
        for i in input.storage.indices { input.storage[i] = 2 + 2 * (r.unitFloat() - 0.5) + 0.5 * r.normal() }
        let reference = try NumPyReference.rows(weights: file, patches: input, dir: dir)
        try #require(reference.count == 3 * 250)

        let x = input.reshaped([3, 1, 96, 187])
        let taggram = tower.taggram(patches: x)
        let d = NumPyReference.differences(features: tower.penultimate(patches: x, training: false), taggram: taggram,
                                           reference: reference, width: 200)
        #expect(d.tag <= 1e-4, "taggram max |Δ| \(d.tag)")
        #expect(d.feature <= 1e-4 * max(1, d.largest), "penultimate max |Δ| \(d.feature) (values up to \(d.largest))")
        let spread = Set(taggram.storage.map { ($0 * 100).rounded() }).count
        #expect(spread > 10, "the taggram should not be constant (\(spread) distinct values)")
    }

    @Test func embeddingIsTheProjectedMeanOverPatches() {
        var random = RandomSource(seed: 4)
        let tower = MusicnnTower(embeddingDim: 8, random: &random)
        // Two windows of 400 frames: 2 patches each (frames 374…399 are dropped).
        let logMel = Tensor.normal(shape: [2, 96, 400], std: 1, using: &random)
        let e = tower.forward(logMel, training: false)
        #expect(e.shape == [2, 8])
        let patches = MusicnnTower.patchBatch(logMel)
        #expect(patches.shape == [4, 1, 96, 187])
        // Patch 1 of window 1 (row 3), band 5, frame 10 is frame 187 + 10 of window 1.
        let patchIndex: Int = (3 * 96 + 5) * 187 + 10, windowIndex: Int = (1 * 96 + 5) * 400 + 197
        #expect(patches.storage[patchIndex] == logMel.storage[windowIndex])
        let f = tower.penultimate(patches: patches, training: false)
        for b in 0..<2 {
            var mean = Tensor(shape: [1, 200])
            for j in 0..<200 { mean.storage[j] = (f.storage[(2 * b) * 200 + j] + f.storage[(2 * b + 1) * 200 + j]) / 2 }
            let p = tower.proj.forward(mean, training: false)
            let norm = p.storage.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for j in 0..<8 { #expect(abs(e.storage[b * 8 + j] - p.storage[j] / norm) < 1e-5) }
        }
    }

    /// Without gradient state (inference, or a frozen tower in training) the patches go through the
    /// tower a few at a time (`inferencePatches`): the rows are those of each patch on its own.
    @Test func patchesInChunksGiveEachPatchsOwnRows() {
        var random = RandomSource(seed: 6)
        let tower = MusicnnTower(embeddingDim: 8, random: &random)
        let patches = Tensor.normal(shape: [5, 1, 96, 187], std: 1, using: &random)
        #expect(5 > MusicnnTower.inferencePatches)
        let whole = tower.penultimate(patches: patches, training: false)
        #expect(whole.shape == [5, 200])
        let per = 96 * 187
        for i in 0..<5 {
            let one = Tensor(shape: [1, 1, 96, 187], Array(patches.storage[(i * per)..<((i + 1) * per)]))
            let row = tower.penultimate(patches: one, training: false)
            let worst = (0..<200).map { abs(row.storage[$0] - whole.storage[i * 200 + $0]) }.max() ?? 0
            #expect(worst <= 1e-5, "patch \(i): max |Δ| \(worst)")
        }
        tower.trainedBlocks = 0
        let frozen = tower.penultimate(patches: patches, training: true)
        #expect(frozen.storage == whole.storage, "a frozen tower in training mode is the inference pass")
    }

    /// The tower's backward pass against central differences of L = Σ e·r (batch norm in training
    /// mode over 3 patches). ReLU before max pooling makes exact ties (every clipped value is 0)
    /// where L has kinks, so the biases before each ReLU are raised to +4: the ReLUs then almost
    /// never clip. Each layer has its own coordinate-wise check in MulanTensorTests; this one checks
    /// how the tower wires them (concatenations, residuals, the patch mean, the depth cuts):
    /// coordinates of the midend, backend and proj; and, because single coordinates of the front
    /// end and the input move L by less than float rounding through ~10 layers, the derivative of L
    /// along the analytic gradient of the whole front end (and of the input), which must equal the
    /// gradient's norm.
    @Test func towerGradients() {
        var random = RandomSource(seed: 5)
        let tower = MusicnnTower(embeddingDim: 6, random: &random)
        for (name, p) in tower.namedParameters where name.hasSuffix("conv.bias") || name == "backend.dense.bias" {
            p.value = Tensor(shape: p.value.shape, repeating: 4)
        }
        let logMel = Tensor.normal(shape: [3, 96, 187], std: 1, using: &random)
        // (Not the batch-norm shifts of the midend: pool_bn, over the batch, cancels a constant shift of
        // a channel in every patch, so their true gradient is 0 and central differences show only rounding.)
        let checked = Set(["midend.0.conv.weight", "midend.1.conv.weight", "midend.2.bn.weight", "backend.pool_bn.weight",
                           "backend.dense.weight", "proj.weight"])
        let parameters = tower.namedParameters.filter { checked.contains($0.name) }
        #expect(parameters.count == checked.count)
        let bad = TrainingGradientCheck.check(input: logMel, parameters: parameters,
                                              forward: { tower.forward($0, training: true) },
                                              backward: { _ = tower.backward($0, inputGradient: false); return nil },
                                              epsilon: 2e-3, tolerance: 5e-2, samples: 3)
        #expect(bad.isEmpty, "\(bad.prefix(6))")

        // Directional derivatives along the analytic gradients of the front end and of the input.
        let r = Tensor.normal(shape: [3, 6], std: 1, using: &random)
        func loss() -> Double {
            zip(tower.forward(logMel, training: true).storage, r.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let front = tower.namedParameters.filter { MusicnnTower.block(of: $0.name) == 0 && $0.parameter.trainable }
        tower.zeroGrads()
        _ = tower.forward(logMel, training: true)
        let dx = tower.backward(r, inputGradient: true)!
        let grads = front.map(\.parameter.grad)
        let norm = grads.reduce(0.0) { $0 + $1.storage.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
        // Steps that move L by about 0.01 (L is bounded: a sum of unit vectors times r).
        let h = 1e-2 / max(norm, 1)
        func shiftFront(_ sign: Double) {
            for (k, (_, p)) in front.enumerated() {
                var v = p.value
                for i in v.storage.indices { v.storage[i] += Float(sign * h * Double(grads[k].storage[i]) / norm) }
                p.value = v
            }
        }
        let saved = front.map(\.parameter.value)
        shiftFront(1)
        let plus = loss()
        for (k, (_, p)) in front.enumerated() { p.value = saved[k] }
        shiftFront(-1)
        let minus = loss()
        for (k, (_, p)) in front.enumerated() { p.value = saved[k] }
        let along = (plus - minus) / (2 * h)
        #expect(abs(along - norm) <= 0.05 * norm, "front end: derivative along the gradient \(along), gradient norm \(norm)")

        let dxNorm = dx.storage.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        func inputLoss(_ sign: Double) -> Double {
            var x = logMel
            for i in x.storage.indices { x.storage[i] += Float(sign * hx * Double(dx.storage[i]) / dxNorm) }
            return zip(tower.forward(x, training: true).storage, r.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let hx = 1e-2 / max(dxNorm, 1)
        let alongInput = (inputLoss(1) - inputLoss(-1)) / (2 * hx)
        #expect(abs(alongInput - dxNorm) <= 0.05 * dxNorm, "input: derivative along the gradient \(alongInput), norm \(dxNorm)")
    }

    /// top:1 trains the backend and proj only; the blocks below get no gradient and keep their
    /// batch-norm statistics. frozen trains proj only and keeps every statistic.
    @Test(arguments: [0, 1, 2])
    func partialTrainingTouchesOnlyTheTop(trainedBlocks: Int) {
        var random = RandomSource(seed: 6)
        let tower = MusicnnTower(embeddingDim: 6, random: &random)
        tower.trainedBlocks = trainedBlocks
        let logMel = Tensor.normal(shape: [3, 96, 187], std: 1, using: &random)
        let before = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value) })
        tower.zeroGrads()
        let e = tower.forward(logMel, training: true)
        let dx = tower.backward(Tensor.normal(shape: e.shape, std: 1, using: &random), inputGradient: true)
        #expect(dx == nil, "no input gradient unless the whole tower trains")
        for (name, p) in tower.namedParameters {
            let trains = MusicnnTower.trains(name, trainedBlocks: trainedBlocks)
            let moved = p.grad.storage.contains { $0 != 0 }
            if p.trainable {
                #expect(moved == trains, "\(name): gradient \(moved ? "present" : "absent") at depth \(trainedBlocks)")
            } else {
                // Running statistics change only in blocks that train.
                let block = MusicnnTower.block(of: name) ?? -1
                let changed = p.value != before[name]
                #expect(changed == (block >= 3 - trainedBlocks), "\(name): running statistic changed \(changed)")
            }
        }
    }

    @Test func badPretrainedFilesAreNamed() throws {
        let dir = TempDir("musicnn-bad")
        var random = RandomSource(seed: 8)
        let tower = MusicnnTower(embeddingDim: 4, random: &random)
        let good = MusicnnFixture.randomTensors(seed: 9)
        func message(_ name: String, tensors: [(name: String, tensor: Tensor)] = good,
                     metadata: [String: String] = MusicnnFixture.metadata) throws -> String {
            let path = dir.file(name)
            try MusicnnFixture.write(path, tensors: tensors, metadata: metadata)
            do {
                try PretrainedAudio.load(path, into: tower)
                return "loaded"
            } catch {
                #expect(error.description.contains(path), "\(error.description)")
                return error.description
            }
        }
        var vgg = MusicnnFixture.metadata
        vgg["architecture"] = "vgg"
        #expect(try message("vgg.safetensors", metadata: vgg).contains("holds a vgg model, not musicnn"))
        #expect(try message("missing.safetensors", tensors: good.filter { $0.name != "midend.1.conv.weight" })
            .contains("no tensor midend.1.conv.weight"))
        var reshaped = good
        reshaped[reshaped.firstIndex { $0.name == "backend.dense.weight" }!].tensor = Tensor(shape: [1506, 200])
        let shape = try message("shape.safetensors", tensors: reshaped)
        #expect(shape.contains("backend.dense.weight has shape [1506, 200]") && shape.contains("[200, 1506]"), "\(shape)")
        var hop = MusicnnFixture.metadata
        hop["hop"] = "512"
        #expect(try message("hop.safetensors", metadata: hop).contains("setting hop is 512"))
        var other = MusicnnFixture.metadata
        other["format"] = "mulan-checkpoint-1"
        #expect(try message("other.safetensors", metadata: other).contains("not a converted pretrained audio model"))
        let missingFile = dir.file("absent.safetensors")
        #expect(throws: MulanError.self) { try PretrainedAudio.load(missingFile, into: tower) }
        #expect(try message("good.safetensors") == "loaded")
    }

    @Test func configurationKindAndFrontEndChecks() throws {
        var config = TrainingConfig(sampleRate: 16000)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A resnet configuration encodes as before (no kind, no audio keys).
        let plain = String(decoding: try encoder.encode(config), as: UTF8.self)
        #expect(!plain.contains("kind") && !plain.contains("audioTraining") && !plain.contains("scale"))
        #expect(try JSONDecoder().decode(TrainingConfig.self, from: Data(plain.utf8)).audio.kind == .resnet)
        try config.checkAudio(source: "test")

        config.audio.kind = .musicnn
        config.audio.melBands = 96
        config.audioTraining = .top(2)
        #expect(throws: MulanError.self) { try config.checkAudio(source: "test") }   // logMel is still the ResNet's
        do {
            try config.checkAudio(source: "the checkpoint X")
        } catch {
            #expect(error.description.contains("the checkpoint X") && error.description.contains("logMel.windowLength is 400 samples, not 512"),
                    "\(error.description)")
        }
        config.logMel = .musicnn
        try config.checkAudio(source: "test")
        let data = try encoder.encode(config)
        let decoded = try JSONDecoder().decode(TrainingConfig.self, from: data)
        #expect(decoded == config && decoded.audio.kind == .musicnn && decoded.audioTraining == .top(2))
        config.logMel.hopSeconds = 0.010
        do {
            try config.checkAudio(source: "f")
            Issue.record("a differing hop must be refused")
        } catch {
            #expect(error.description.contains("hopLength is 160 samples, not 256"), "\(error.description)")
        }
        config.logMel = .musicnn
        config.windowSeconds = 2
        #expect(throws: MulanError.self) { try config.checkAudio(source: "short windows") }
        config.windowSeconds = 10
        config.audioTraining = .top(4)
        #expect(throws: MulanError.self) { try config.checkAudio(source: "top:4") }
        config.audio.kind = .vgg
        config.audioTraining = .top(5)
        try config.checkAudio(source: "vgg")
        config.audioTraining = .top(6)
        do {
            try config.checkAudio(source: "vgg top:6")
            Issue.record("top:6 of vgg's 5 blocks must be refused")
        } catch {
            #expect(error.description.contains("vgg has 5 blocks"), "\(error.description)")
        }
        var resnet = TrainingConfig(sampleRate: 16000)
        resnet.audioTraining = .frozen
        #expect(throws: MulanError.self) { try resnet.checkAudio(source: "resnet frozen") }
    }
}

/// `mulan-train --audio-tower musicnn --audio-init FILE --audio-train …` on `TimbreCorpus` (16 kHz),
/// then `mulan-embed` on its checkpoint.
@Suite("musicnn in mulan-train and mulan-embed", .serialized)
struct MusicnnTrainingTests {
    static let common = ["--audio-tower", "musicnn", "--batch-size", "12", "--text-width", "32", "--text-layers", "1",
                         "--text-heads", "2", "--text-feed-forward", "64", "--max-text-length", "16", "--window-seconds", "4",
                         "--shuffle-buffer", "40", "--eval-samples", "6", "--threads", "2", "--quiet"]

    static func train(_ dataset: String, _ run: String, _ extra: [String]) throws -> ProcessResult {
        try TestProcess.run(TestPaths.executable("mulan-train"), ["--dataset", dataset, "--run-dir", run] + common + extra)
    }

    @Test func warmStartedMusicnnTrainsOnlyWhatItShouldAndEmbeds() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 2)
        let file = h.dir.file("musicnn.safetensors")
        let pretrained = MusicnnFixture.randomTensors(seed: 11)
        try MusicnnFixture.write(file, tensors: pretrained)
        let initial = Dictionary(uniqueKeysWithValues: pretrained.map { ("audio." + $0.name, $0.tensor) })

        for mode in ["frozen", "top:1"] {
            let run = h.dir.file("run-\(mode)")
            let r = try Self.train(dataset, run, ["--steps", "2", "--eval-every", "2", "--checkpoint-every", "2", "--lr", "1e-2",
                                                  "--warmup-steps", "1", "--audio-init", file, "--audio-train", mode])
            try #require(r.status == 0, "\(mode): \(r.stderr)")
            let trained = try SafeTensors.read(run + "/checkpoint-000002.safetensors")
            let config = try #require(trained.metadata["config"])
            #expect(config.contains(#""kind":"musicnn""#) && config.contains(#""scale":"log10(10000x+1)""#)
                    && config.contains(#""audioTraining":"\#(mode)""#), "\(config.prefix(600))")
            // The front end and the midend never train here: weights and statistics as loaded.
            for name in ["audio.input_bn.running_var", "audio.timbral.0.conv.weight", "audio.temporal.2.bn.running_mean",
                         "audio.midend.0.conv.weight", "audio.midend.2.bn.running_var", "audio.backend.logits.weight"] {
                #expect(trained.tensors[name] == initial[name], "\(mode): \(name) moved")
                #expect(trained.tensors["optimizer.m." + name] == nil, "\(mode): \(name) has optimizer state")
            }
            let dense = trained.tensors["audio.backend.dense.weight"], stats = trained.tensors["audio.backend.dense_bn.running_mean"]
            if mode == "frozen" {
                #expect(dense == initial["audio.backend.dense.weight"] && stats == initial["audio.backend.dense_bn.running_mean"])
                #expect(!trained.tensors.keys.contains { $0.hasPrefix("optimizer.m.audio.backend") })
            } else {
                #expect(dense != nil && dense != initial["audio.backend.dense.weight"], "the backend did not train")
                #expect(stats != initial["audio.backend.dense_bn.running_mean"], "the backend's batch norm did not update")
                #expect(trained.tensors.keys.contains("optimizer.m.audio.backend.dense.weight"))
            }
            #expect(trained.tensors.keys.contains("optimizer.m.audio.proj.weight"))
        }

        // A resumed run rebuilds the musicnn tower from its checkpoint.
        let resumed = try Self.train(dataset, h.dir.file("run-frozen"), ["--steps", "3", "--resume", "--eval-every", "3",
                                                                          "--checkpoint-every", "3"])
        #expect(resumed.status == 0, "\(resumed.stderr)")

        // mulan-embed loads the checkpoint unchanged; its rows equal the in-process embedder's.
        let wav = h.dir.file("files/square.wav")
        try EmbedSearchEvalTests.generate(wav, classIndex: 1, frequency: 330, seconds: 9)
        let out = h.dir.file("index")
        let embed = try TestProcess.run(TestPaths.executable("mulan-embed"), [
            "--run-dir", h.dir.file("run-frozen"), "--audio", wav, "--out", out, "--threads", "2", "--quiet"])
        try #require(embed.status == 0, "\(embed.stderr)")
        let index = try EmbeddingIndex(directory: out)
        #expect(index.rows.count == 1 && index.dim == 128 && index.info.sampleRate == 16000 && index.info.step == 3)
        let row = index.embedding(0)
        #expect(abs(row.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
        let embedder = try Embedder(checkpoint: h.dir.file("run-frozen/checkpoint-000003.safetensors"), vocabulary: nil)
        let samples = try Embedder.decodeFile(wav, sampleRate: 16000).get()
        let direct = try #require(embedder.embed(clips: [samples]).first ?? nil)
        #expect(direct.windows == 3)
        #expect(zip(direct.embedding, row).allSatisfy { abs($0 - $1) < 1e-5 }, "mulan-embed and Embedder differ")

        // Bad input: frozen without a file; a file of another architecture, named with the reason.
        let refused = try Self.train(dataset, h.dir.file("nope"), ["--audio-train", "frozen"])
        #expect(refused.status == 64 && refused.stderr.contains("--audio-init"), "\(refused.stderr)")
        let bands = try Self.train(dataset, h.dir.file("nope"), ["--mel-bands", "64"])
        #expect(bands.status == 64 && bands.stderr.contains("--mel-bands 64.0 does not apply"), "\(bands.stderr)")
        var vgg = MusicnnFixture.metadata
        vgg["architecture"] = "vgg"
        let vggFile = h.dir.file("vgg.safetensors")
        try MusicnnFixture.write(vggFile, tensors: pretrained, metadata: vgg)
        let wrong = try Self.train(dataset, h.dir.file("wrong"), ["--steps", "1", "--audio-init", vggFile])
        #expect(wrong.status == 1 && wrong.stderr.contains(vggFile) && wrong.stderr.contains("vgg model, not musicnn"),
                "\(wrong.status): \(wrong.stderr)")
    }
}

/// The real converted weights (`scripts/setup.sh --python` writes them under
/// `.venv/mulan-pretrained`; the Makefile passes the folder as MULAN_TEST_PRETRAINED). Skipped
/// when the variable is not set; failing, not skipping, when it is set and a file is missing.
@Suite("musicnn with the converted MSD/MTT weights",
       .enabled(if: ProcessInfo.processInfo.environment["MULAN_TEST_PRETRAINED"].map { !$0.isEmpty } ?? false))
struct MusicnnPretrainedTests {
    /// Five synthetic 6-s clips at 16 kHz: a vibrato chord, a sawtooth bass line, noise bursts on
    /// a beat, white noise, and a tone after silence.
    static func clips() -> [[Float]] {
        let rate = 16000.0, n = 96000
        var random = RandomSource(seed: 26)
        func make(_ f: (Int, Double) -> Double) -> [Float] { (0..<n).map { Float(f($0, Double($0) / rate)) } }
        return [
            make { _, t in [261.6, 329.6, 392.0].reduce(0.0) { s, f in s + 0.15 * sin(2 * .pi * f * t + 3 * sin(2 * .pi * 5 * t)) } },
            make { _, t in let f = [55.0, 73.4, 82.4, 61.7][Int(t * 2) % 4]; return 0.4 * (2 * (f * t).truncatingRemainder(dividingBy: 1) - 1) },
            make { _, t in
                let phase = (t * 4).truncatingRemainder(dividingBy: 1)
                return phase < 0.1 ? 0.6 * Double(random.unitFloat() * 2 - 1) * (1 - phase * 10) : 0
            },
            make { _, _ in 0.2 * Double(random.unitFloat() * 2 - 1) },
            make { _, t in t < 2 ? 0 : 0.3 * sin(2 * .pi * 880 * t) },
        ]
    }

    @Test(arguments: ["MSD_musicnn", "MTT_musicnn"])
    func taggramMatchesTheNumPyForwardOnTheConvertedWeights(_ model: String) throws {
        let root = try #require(ProcessInfo.processInfo.environment["MULAN_TEST_PRETRAINED"])
        let file = root + "/musicnn/" + model + ".safetensors"
        try #require(FileManager.default.fileExists(atPath: file),
                     "MULAN_TEST_PRETRAINED is set but \(file) is missing: run scripts/setup.sh --python")
        var random = RandomSource(seed: 1)
        let tower = MusicnnTower(embeddingDim: 8, random: &random)
        let loaded = try PretrainedAudio.load(file, into: tower)
        #expect(loaded.metadata["source"] == "musicnn 0.1.0 \(model)" && loaded.metadata["licence"] == "ISC")
        let tags = try #require(loaded.tags)
        #expect(tags.contains("rock") && tags.count == 50)

        // The clips' log-mel through mulan's musicnn front end, cut into patches as the tower does.
        let patches = try NumPyReference.clipPatches()
        let clips = Self.clips()
        let n = patches.shape[0]
        #expect(n == clips.count * 2)
        let dir = TempDir("musicnn-pretrained")
        let reference = try NumPyReference.rows(weights: file, patches: patches, dir: dir)
        try #require(reference.count == n * 250)
        let taggram = tower.taggram(patches: patches)
        let worst = NumPyReference.differences(features: nil, taggram: taggram, reference: reference, width: 200).tag
        #expect(worst <= 1e-4, "\(model): taggram max |Δ| \(worst)")
        // The clips are told apart: the most likely tag is not the same for all of them.
        let top = (0..<clips.count).map { c in (0..<50).max { taggram.storage[2 * c * 50 + $0] < taggram.storage[2 * c * 50 + $1] }! }
        #expect(Set(top).count > 1, "\(model): every clip's top tag is \(tags[top[0]])")
    }
}
