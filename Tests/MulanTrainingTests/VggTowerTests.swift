import Foundation
import MulanCore
import MulanDSP
import MulanTensor
import MulanTestSupport
@testable import MulanTraining
import Testing

/// Converted vgg files with the spec's names (docs/pretrained-audio.md), random values.
enum VggFixture {
    static let specShapes: [(String, [Int])] = {
        var all: [(String, [Int])] = []
        func bn(_ name: String, _ c: Int) {
            for s in ["weight", "bias", "running_mean", "running_var"] { all.append(("\(name).\(s)", [c])) }
        }
        bn("input_bn", 1)
        for i in 0..<5 {
            all.append(("blocks.\(i).conv.weight", [128, i == 0 ? 1 : 128, 3, 3]))
            all.append(("blocks.\(i).conv.bias", [128]))
            bn("blocks.\(i).bn", 128)
        }
        all.append(("logits.weight", [50, 256]))
        all.append(("logits.bias", [50]))
        return all
    }()

    static var metadata: [String: String] {
        var m = MusicnnFixture.metadata
        m["architecture"] = "vgg"
        return m
    }

    /// Random tensors as `MusicnnFixture.randomTensors` makes them, with vgg's names and shapes.
    static func randomTensors(seed: UInt64) -> [(name: String, tensor: Tensor)] {
        var random = RandomSource(seed: seed)
        return specShapes.map { name, shape in
            let n = shape.reduce(1, *)
            var t = Tensor(shape: shape)
            for i in 0..<n {
                let u = random.unitFloat()
                if name.hasSuffix("running_var") {
                    t.storage[i] = 0.5 + u
                } else if name.hasSuffix("bn.weight") {
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

}

/// The independent NumPy forward of musicnn's and vgg's TensorFlow graphs (Tests/tools/musicnn_reference.py)
/// and how far a Swift tower is from it.
enum NumPyReference {
    /// The reference's rows for `patches` [N, 1, 96, 187] (or [N, 96, 187]) under `weights`: per
    /// patch the features (musicnn 200, vgg 128), then the 50 tag probabilities.
    static func rows(weights: String, patches: Tensor, dir: TempDir) throws -> [Float] {
        let n = patches.shape[0]
        let inPath = dir.file("in.f32"), outPath = dir.file("out.f32")
        try patches.storage.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: inPath)) }
        try TestPython.tool("musicnn_reference.py", [weights, inPath, "\(n)", outPath])
        return try Data(contentsOf: URL(fileURLWithPath: outPath)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The largest |Δ| of the features (when given) and of the taggram against the reference's rows,
    /// and the largest reference feature.
    static func differences(features: Tensor?, taggram: Tensor, reference: [Float], width: Int)
        -> (feature: Float, largest: Float, tag: Float) {
        let n = taggram.shape[0], row = width + 50
        var feature: Float = 0, largest: Float = 0, tag: Float = 0
        for p in 0..<n {
            if let features {
                for j in 0..<width {
                    feature = max(feature, abs(features.storage[p * width + j] - reference[p * row + j]))
                    largest = max(largest, abs(reference[p * row + j]))
                }
            }
            for j in 0..<50 { tag = max(tag, abs(taggram.storage[p * 50 + j] - reference[p * row + width + j])) }
        }
        return (feature, largest, tag)
    }

    /// MusicnnPretrainedTests' five clips through mulan's musicnn front end, cut into patches as the towers do.
    static func clipPatches() throws -> Tensor {
        let mel = try LogMelSpectrogram(config: .musicnn)
        var windows: [Float] = []
        let clips = MusicnnPretrainedTests.clips()
        var frames = 0
        for clip in clips {
            let m = mel.compute(clip)
            frames = m.frames
            windows += m.values
        }
        return MusicnnTower.patchBatch(Tensor(shape: [clips.count, 96, frames], windows))
    }
}

@Suite("vgg audio tower")
struct VggTowerTests {
    @Test func parameterNamesShapesAndBlocksFollowTheSpec() {
        var random = RandomSource(seed: 1)
        let tower = VggTower(embeddingDim: 32, random: &random)
        let expected = VggFixture.specShapes + [("proj.weight", [32, 128]), ("proj.bias", [32])]
        #expect(tower.namedParameters.map(\.name) == expected.map(\.0))
        #expect(tower.namedParameters.map(\.parameter.value.shape) == expected.map(\.1))
        #expect(tower.pretrainedParameters.count == VggFixture.specShapes.count)
        #expect(tower.inputBN.epsilon == 0.001 && tower.blocks[4].bn.epsilon == 0.001)
        #expect(VggTower.block(of: "input_bn.weight") == 0 && VggTower.block(of: "blocks.3.bn.bias") == 3)
        #expect(VggTower.block(of: "logits.weight") == nil && VggTower.block(of: "proj.weight") == nil)
        #expect(VggTower.trains("proj.weight", trainedBlocks: 0) && !VggTower.trains("blocks.4.conv.weight", trainedBlocks: 0))
        #expect(VggTower.trains("blocks.4.conv.weight", trainedBlocks: 1) && !VggTower.trains("blocks.3.conv.weight", trainedBlocks: 1))
        #expect(!VggTower.trains("input_bn.weight", trainedBlocks: 4) && VggTower.trains("input_bn.weight", trainedBlocks: 5))
        #expect(!VggTower.trains("logits.weight", trainedBlocks: 5))
        #expect(TowerTraining.top(2).trainedBlocks(outOf: 5) == 2 && TowerTraining.full.trainedBlocks(outOf: 5) == 5)
    }

    /// Random weights written as a converted file, loaded as `--audio-init` loads them; features
    /// and taggram against the independent NumPy forward of musicnn's TensorFlow vgg graph.
    @Test func warmStartMatchesAnIndependentNumPyForward() throws {
        let dir = TempDir("vgg-numpy")
        let file = dir.file("random.safetensors")
        let tensors = VggFixture.randomTensors(seed: 7)
        try SafeTensors.write(tensors, metadata: VggFixture.metadata, to: file)
        var random = RandomSource(seed: 2)
        let tower = VggTower(embeddingDim: 16, random: &random)
        let loaded = try PretrainedAudio.load(file, into: tower)
        #expect(loaded.tags?.count == 50)
        let byName = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value) })
        for (name, t) in tensors { #expect(byName[name] == t, "\(name) not loaded") }

        var input = Tensor(shape: [3, 1, 96, 187])
        var r = RandomSource(seed: 3)
        for i in input.storage.indices { input.storage[i] = 2 + 2 * (r.unitFloat() - 0.5) + 0.5 * r.normal() }
        let reference = try NumPyReference.rows(weights: file, patches: input, dir: dir)
        try #require(reference.count == 3 * 178)
        let taggram = tower.taggram(patches: input)
        let d = NumPyReference.differences(features: tower.penultimate(patches: input, training: false), taggram: taggram,
                                           reference: reference, width: 128)
        #expect(d.tag <= 1e-4, "taggram max |Δ| \(d.tag)")
        #expect(d.feature <= 1e-4 * max(1, d.largest), "features max |Δ| \(d.feature) (values up to \(d.largest))")
        #expect(Set(taggram.storage.map { ($0 * 100).rounded() }).count > 10, "the taggram should not be constant")

        // A musicnn file is not a vgg file.
        let musicnn = dir.file("musicnn.safetensors")
        try MusicnnFixture.write(musicnn, tensors: MusicnnFixture.randomTensors(seed: 1))
        do {
            try PretrainedAudio.load(musicnn, into: tower)
            Issue.record("a musicnn file must not load into vgg")
        } catch {
            #expect(error.description.contains("holds a musicnn model, not vgg") && error.description.contains(musicnn))
        }
        var short = tensors
        short[short.firstIndex { $0.name == "logits.weight" }!].tensor = Tensor(shape: [50, 128])
        try SafeTensors.write(short, metadata: VggFixture.metadata, to: file)
        do {
            try PretrainedAudio.load(file, into: tower)
            Issue.record("a misshapen tensor must be refused")
        } catch {
            #expect(error.description.contains("logits.weight has shape [50, 128]") && error.description.contains("vgg tower needs [50, 256]"),
                    "\(error.description)")
        }
    }

    /// The backward pass against central differences of L = Σ e·r (batch norm in training mode over
    /// 3 patches; conv biases raised to +4 so the ReLUs before max pooling almost never clip, which
    /// would make ties): single coordinates of the top blocks and proj, and the derivative along the
    /// analytic gradient of the bottom blocks and of the input.
    @Test func towerGradients() {
        var random = RandomSource(seed: 5)
        let tower = VggTower(embeddingDim: 6, random: &random)
        for (name, p) in tower.namedParameters where name.hasSuffix("conv.bias") {
            p.value = Tensor(shape: p.value.shape, repeating: 4)
        }
        let logMel = Tensor.normal(shape: [3, 96, 187], std: 1, using: &random)
        let checked = Set(["blocks.4.conv.weight", "blocks.4.bn.weight", "blocks.3.conv.weight", "proj.weight"])
        let parameters = tower.namedParameters.filter { checked.contains($0.name) }
        #expect(parameters.count == checked.count)
        let bad = TrainingGradientCheck.check(input: logMel, parameters: parameters,
                                              forward: { tower.forward($0, training: true) },
                                              backward: { _ = tower.backward($0, inputGradient: false); return nil },
                                              epsilon: 2e-3, tolerance: 5e-2, samples: 3)
        #expect(bad.isEmpty, "\(bad.prefix(6))")

        let r = Tensor.normal(shape: [3, 6], std: 1, using: &random)
        func loss(_ x: Tensor) -> Double {
            zip(tower.forward(x, training: true).storage, r.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let bottom = tower.namedParameters.filter { (VggTower.block(of: $0.name) ?? 9) <= 1 && $0.parameter.trainable }
        tower.zeroGrads()
        _ = tower.forward(logMel, training: true)
        let dx = tower.backward(r, inputGradient: true)!
        let grads = bottom.map(\.parameter.grad)
        let norm = grads.reduce(0.0) { $0 + $1.storage.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
        let h = 1e-2 / max(norm, 1)
        let saved = bottom.map(\.parameter.value)
        func shift(_ sign: Double) {
            for (k, (_, p)) in bottom.enumerated() {
                var v = saved[k]
                for i in v.storage.indices { v.storage[i] += Float(sign * h * Double(grads[k].storage[i]) / norm) }
                p.value = v
            }
        }
        shift(1)
        let plus = loss(logMel)
        shift(-1)
        let minus = loss(logMel)
        for (k, (_, p)) in bottom.enumerated() { p.value = saved[k] }
        let along = (plus - minus) / (2 * h)
        #expect(norm > 0 && abs(along - norm) <= 0.05 * norm, "bottom blocks: derivative along the gradient \(along), norm \(norm)")

        let dxNorm = dx.storage.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let hx = 1e-2 / max(dxNorm, 1)
        func moved(_ sign: Double) -> Tensor {
            var x = logMel
            for i in x.storage.indices { x.storage[i] += Float(sign * hx * Double(dx.storage[i]) / dxNorm) }
            return x
        }
        let alongInput = (loss(moved(1)) - loss(moved(-1))) / (2 * hx)
        #expect(dxNorm > 0 && abs(alongInput - dxNorm) <= 0.05 * dxNorm, "input: derivative along the gradient \(alongInput), norm \(dxNorm)")
    }

    /// top:K trains proj and the top K blocks only; the others get no gradient and keep their
    /// batch-norm statistics; no input gradient unless all five train.
    @Test(arguments: [0, 1, 3])
    func partialTrainingTouchesOnlyTheTop(trainedBlocks: Int) {
        var random = RandomSource(seed: 6)
        let tower = VggTower(embeddingDim: 6, random: &random)
        tower.trainedBlocks = trainedBlocks
        let logMel = Tensor.normal(shape: [3, 96, 187], std: 1, using: &random)
        let before = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value) })
        tower.zeroGrads()
        let e = tower.forward(logMel, training: true)
        let dx = tower.backward(Tensor.normal(shape: e.shape, std: 1, using: &random), inputGradient: true)
        #expect(dx == nil)
        for (name, p) in tower.namedParameters {
            let trains = VggTower.trains(name, trainedBlocks: trainedBlocks)
            let moved = p.grad.storage.contains { $0 != 0 }
            if p.trainable {
                #expect(moved == trains, "\(name): gradient \(moved ? "present" : "absent") at depth \(trainedBlocks)")
            } else {
                let changed = p.value != before[name]
                #expect(changed == ((VggTower.block(of: name) ?? -1) >= 5 - trainedBlocks), "\(name): running statistic changed \(changed)")
            }
        }
    }

    /// The real converted MSD_vgg / MTT_vgg (MULAN_TEST_PRETRAINED): the taggram of five synthetic
    /// clips through mulan's musicnn front end equals the NumPy forward within 1e-4.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MULAN_TEST_PRETRAINED"].map { !$0.isEmpty } ?? false),
          arguments: ["MSD_vgg", "MTT_vgg"])
    func taggramMatchesTheNumPyForwardOnTheConvertedWeights(_ model: String) throws {
        let root = try #require(ProcessInfo.processInfo.environment["MULAN_TEST_PRETRAINED"])
        let file = root + "/musicnn/" + model + ".safetensors"
        try #require(FileManager.default.fileExists(atPath: file),
                     "MULAN_TEST_PRETRAINED is set but \(file) is missing: run scripts/setup.sh --python")
        var random = RandomSource(seed: 1)
        let tower = VggTower(embeddingDim: 8, random: &random)
        let loaded = try PretrainedAudio.load(file, into: tower)
        #expect(loaded.metadata["source"] == "musicnn 0.1.0 \(model)" && loaded.tags?.count == 50)
        let patches = try NumPyReference.clipPatches()
        let n = patches.shape[0], clips = n / 2
        let dir = TempDir("vgg-pretrained")
        let reference = try NumPyReference.rows(weights: file, patches: patches, dir: dir)
        try #require(reference.count == n * 178)
        let taggram = tower.taggram(patches: patches)
        let worst = NumPyReference.differences(features: nil, taggram: taggram, reference: reference, width: 128).tag
        #expect(worst <= 1e-4, "\(model): taggram max |Δ| \(worst)")
        let top = (0..<clips).map { c in (0..<50).max { taggram.storage[2 * c * 50 + $0] < taggram.storage[2 * c * 50 + $1] }! }
        #expect(Set(top).count > 1, "\(model): every clip has the same top tag")
    }
}

/// `mulan-train --audio-tower vgg --audio-init FILE --audio-train top:1`, a resume, and `mulan-embed`.
@Suite("vgg in mulan-train and mulan-embed", .serialized)
struct VggTrainingTests {
    @Test func warmStartedVggTrainsOnlyItsTopAndEmbeds() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 2)
        let file = h.dir.file("vgg.safetensors")
        let pretrained = VggFixture.randomTensors(seed: 11)
        try SafeTensors.write(pretrained, metadata: VggFixture.metadata, to: file)
        let initial = Dictionary(uniqueKeysWithValues: pretrained.map { ("audio." + $0.name, $0.tensor) })
        let common = MusicnnTrainingTests.common.map { $0 == "musicnn" ? "vgg" : $0 }
        let run = h.dir.file("run")
        let r = try TestProcess.run(TestPaths.executable("mulan-train"), ["--dataset", dataset, "--run-dir", run] + common + [
            "--steps", "2", "--eval-every", "2", "--checkpoint-every", "2", "--lr", "1e-2", "--warmup-steps", "1",
            "--audio-init", file, "--audio-train", "top:1"])
        try #require(r.status == 0, "\(r.stderr)")
        let trained = try SafeTensors.read(run + "/checkpoint-000002.safetensors")
        let config = try #require(trained.metadata["config"])
        #expect(config.contains(#""kind":"vgg""#) && config.contains(#""audioTraining":"top:1""#), "\(config.prefix(600))")
        for name in ["audio.input_bn.running_var", "audio.blocks.0.conv.weight", "audio.blocks.3.bn.running_mean", "audio.logits.weight"] {
            #expect(trained.tensors[name] == initial[name], "\(name) moved")
            #expect(trained.tensors["optimizer.m." + name] == nil, "\(name) has optimizer state")
        }
        #expect(trained.tensors["audio.blocks.4.conv.weight"] != initial["audio.blocks.4.conv.weight"], "block 4 did not train")
        #expect(trained.tensors["audio.blocks.4.bn.running_mean"] != initial["audio.blocks.4.bn.running_mean"])
        #expect(trained.tensors.keys.contains("optimizer.m.audio.proj.weight"))

        let resumed = try TestProcess.run(TestPaths.executable("mulan-train"), ["--dataset", dataset, "--run-dir", run] + common + [
            "--steps", "3", "--resume", "--eval-every", "3", "--checkpoint-every", "3"])
        #expect(resumed.status == 0, "\(resumed.stderr)")

        let wav = h.dir.file("files/square.wav")
        try EmbedSearchEvalTests.generate(wav, classIndex: 1, frequency: 330, seconds: 9)
        let out = h.dir.file("index")
        let embed = try TestProcess.run(TestPaths.executable("mulan-embed"), [
            "--run-dir", run, "--audio", wav, "--out", out, "--threads", "2", "--quiet"])
        try #require(embed.status == 0, "\(embed.stderr)")
        let index = try EmbeddingIndex(directory: out)
        #expect(index.rows.count == 1 && index.dim == 128)
        let embedder = try Embedder(checkpoint: run + "/checkpoint-000003.safetensors", vocabulary: nil)
        let samples = try Embedder.decodeFile(wav, sampleRate: 16000).get()
        let direct = try #require(embedder.embed(clips: [samples]).first ?? nil)
        #expect(zip(direct.embedding, index.embedding(0)).allSatisfy { abs($0 - $1) < 1e-5 }, "mulan-embed and Embedder differ")

        // A musicnn file given to the vgg tower is named with the reason.
        let musicnn = h.dir.file("musicnn.safetensors")
        try MusicnnFixture.write(musicnn, tensors: MusicnnFixture.randomTensors(seed: 1))
        let wrong = try TestProcess.run(TestPaths.executable("mulan-train"), ["--dataset", dataset, "--run-dir", h.dir.file("wrong")]
                                        + common + ["--steps", "1", "--audio-init", musicnn])
        #expect(wrong.status == 1 && wrong.stderr.contains(musicnn) && wrong.stderr.contains("musicnn model, not vgg"), "\(wrong.stderr)")
    }
}
