import Foundation
import MulanCore
import MulanDSP
import MulanTensor
import MulanTestSupport
@testable import MulanTraining
import Testing

/// The frozen-feature cache (`mulan-train --audio-cache`, `FrozenFeatureCache`): what it stores is
/// what the tower computes, a step on cached features is a step on the windows' log-mel, and the
/// option combinations it cannot serve are refused.
struct FrozenFeatureCacheTests {
    /// A frozen musicnn tower with the fixture's random weights and batch-norm statistics.
    static func frozenTower(seed: UInt64, embeddingDim: Int = 8) throws -> MusicnnTower {
        var random = RandomSource(seed: seed)
        let tower = MusicnnTower(embeddingDim: embeddingDim, random: &random)
        let dir = TempDir("frozen-cache-tower")
        let file = dir.file("musicnn.safetensors")
        try MusicnnFixture.write(file, tensors: MusicnnFixture.randomTensors(seed: seed &+ 1))
        try PretrainedAudio.load(file, into: tower)
        tower.trainedBlocks = 0
        return tower
    }

    /// `seconds` of a chord with a little noise at 16 kHz.
    static func clip(seconds: Double, seed: UInt64) -> [Float] {
        var random = RandomSource(seed: seed)
        let n = Int(seconds * 16000)
        return (0..<n).map { i in
            let t = Double(i) / 16000
            let tone = 0.3 * sin(2 * .pi * 220 * t) + 0.2 * sin(2 * .pi * 331 * t) * (t.truncatingRemainder(dividingBy: 1) < 0.5 ? 1 : 0.2)
            return Float(tone) + 0.02 * (random.unitFloat() - 0.5)
        }
    }

    static func logMel(_ samples: [Float]) throws -> [Float] {
        try LogMelSpectrogram(config: .musicnn).compute(samples).values
    }

    /// [B, 96, K·187]: patches `start..<start+K` of each clip's log-mel, side by side (the windows
    /// the cache's features stand for).
    static func windows(_ clipLogMels: [[Float]], starts: [Int], patches k: Int) -> Tensor {
        let bands = MusicnnTower.melBands, f = MusicnnTower.patchFrames, t = k * f
        var x = Tensor(shape: [clipLogMels.count, bands, t])
        for (i, values) in clipLogMels.enumerated() {
            let frames = values.count / bands
            for m in 0..<bands {
                for j in 0..<t { x.storage[(i * bands + m) * t + j] = values[m * frames + starts[i] * f + j] }
            }
        }
        return x
    }

    @Test func cachedFeaturesEqualTheTowersForwardOnTheSamePatches() throws {
        let tower = try Self.frozenTower(seed: 21)
        let windowSamples = 160_000   // 10 s: 626 frames, 3 patches
        // 13 s: 813 frames, 4 patches; 5 s: padded to the window, 3 patches.
        for (seconds, expected) in [(13.0, 4), (5.0, 3)] {
            let samples = Self.clip(seconds: seconds, seed: 3)
            let cached = FrozenFeatureCache.clipFeatures(samples: samples, windowSamples: windowSamples, tower: tower,
                                                         logMel: { (try? Self.logMel($0)) ?? [] })
            #expect(cached.patches == expected && cached.features.count == expected * MusicnnTower.penultimateWidth)
            let padded = samples + [Float](repeating: 0, count: max(0, windowSamples - samples.count))
            let values = try Self.logMel(padded)
            // Each patch alone through the tower.
            for p in 0..<cached.patches {
                let x = Self.windows([values], starts: [p], patches: 1).reshaped([1, 1, MusicnnTower.melBands, MusicnnTower.patchFrames])
                let direct = tower.penultimate(patches: x, training: false).storage
                let row = Array(cached.features[(p * 200)..<((p + 1) * 200)])
                let worst = zip(direct, row).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= 1e-5, "\(seconds) s, patch \(p): differs by \(worst)")
                #expect(direct.contains { $0 != 0 })
            }
            // A window of the last three patches: the tower's forward on its log-mel and the
            // projection of the cached features' mean give the same embedding.
            let start = cached.patches - 3
            let window = Self.windows([values], starts: [start], patches: 3)
            let full = tower.forward(window, training: false).storage
            var mean = Tensor(shape: [1, 200])
            for p in start..<(start + 3) { for j in 0..<200 { mean.storage[j] += cached.features[p * 200 + j] / 3 } }
            let fromCache = tower.forward(meanPenultimate: mean, training: false).storage
            let worst = zip(full, fromCache).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5, "\(seconds) s: embeddings differ by \(worst)")
        }
    }

    /// A frozen vgg tower is cached the same way (128-d features of pool5): the projection of the
    /// cached features' window mean is the tower's embedding of the window.
    @Test func aFrozenVggTowerIsCachedToo() throws {
        var random = RandomSource(seed: 22)
        let tower = VggTower(embeddingDim: 8, random: &random)
        let dir = TempDir("frozen-cache-vgg")
        let file = dir.file("vgg.safetensors")
        try SafeTensors.write(VggFixture.randomTensors(seed: 23), metadata: VggFixture.metadata, to: file)
        try PretrainedAudio.load(file, into: tower)
        tower.trainedBlocks = 0
        let samples = Self.clip(seconds: 13, seed: 4)
        let cached = FrozenFeatureCache.clipFeatures(samples: samples, windowSamples: 160_000, tower: tower,
                                                     logMel: { (try? Self.logMel($0)) ?? [] })
        #expect(cached.patches == 4 && cached.features.count == 4 * VggTower.featureWidth)
        let window = Self.windows([try Self.logMel(samples)], starts: [1], patches: 3)
        let full = tower.forward(window, training: false).storage
        var mean = Tensor(shape: [1, 128])
        for p in 1..<4 { for j in 0..<128 { mean.storage[j] += cached.features[p * 128 + j] / 3 } }
        let fromCache = tower.forward(meanPenultimate: mean, training: false).storage
        let worst = zip(full, fromCache).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5, "embeddings differ by \(worst)")
        var config = TrainingConfig(sampleRate: 16000)
        config.logMel = .musicnn
        config.audio.kind = .vgg
        config.audio.melBands = 96
        config.audioTraining = .frozen
        config.audioCacheMiB = 64
        config.specAugment = nil
        try config.checkAudio(source: "vgg frozen with a cache")
    }

    /// One contrastive step on cached features: the same loss and the same gradients as the
    /// step on the windows' log-mel through the frozen tower.
    @Test func aStepOnCachedFeaturesEqualsTheStepOnTheWindows() throws {
        let b = 4, d = 8
        let clips = (0..<b).map { Self.clip(seconds: 12 + Double($0), seed: UInt64(10 + $0)) }
        let values = try clips.map { try Self.logMel($0) }
        let starts = [0, 1, 0, 2]
        var random = RandomSource(seed: 5)
        let text = Tensor.normal(shape: [b, d], std: 1, using: &random)

        func step(_ embed: (MusicnnTower) -> Tensor) throws -> (loss: Float, grads: [String: Tensor], dText: Tensor) {
            let tower = try Self.frozenTower(seed: 31, embeddingDim: d)
            let loss = ContrastiveLoss(initialTemperature: 0.1, decoupled: true)
            tower.zeroGrads()
            loss.zeroGrads()
            let a = embed(tower)
            let value = loss.forward(audio: a, text: text)
            let (da, dt) = loss.backward()
            tower.backward(da, inputGradient: false)
            var grads: [String: Tensor] = [:]
            for (name, p) in tower.namedParameters where p.trainable { grads[name] = p.grad }
            grads["loss.log_temperature"] = loss.logTemperature.grad
            return (value, grads, dt)
        }
        let direct = try step { tower in tower.forward(Self.windows(values, starts: starts, patches: 3), training: true) }
        let cached = try step { tower in
            var mean = Tensor(shape: [b, 200])
            for (i, clip) in clips.enumerated() {
                let f = FrozenFeatureCache.clipFeatures(samples: clip, windowSamples: 160_000, tower: tower,
                                                        logMel: { (try? Self.logMel($0)) ?? [] }).features
                for p in starts[i]..<(starts[i] + 3) { for j in 0..<200 { mean.storage[i * 200 + j] += f[p * 200 + j] / 3 } }
            }
            return tower.forward(meanPenultimate: mean, training: true)
        }
        #expect(abs(direct.loss - cached.loss) <= 1e-5, "loss \(direct.loss) vs \(cached.loss)")
        #expect(direct.grads.keys.sorted() == cached.grads.keys.sorted())
        for (name, g) in direct.grads {
            let other = try #require(cached.grads[name])
            let scale = max(1, g.storage.map { abs($0) }.max() ?? 0)
            let worst = zip(g.storage, other.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5 * scale, "\(name): gradients differ by \(worst)")
            // Frozen: only proj (and the temperature) have a gradient, in both.
            let moved = g.storage.contains { $0 != 0 }
            #expect(moved == (name.hasPrefix("proj.") || name.hasPrefix("loss.")), "\(name): gradient \(moved)")
        }
        #expect(zip(direct.dText.storage, cached.dText.storage).allSatisfy { abs($0 - $1) <= 1e-5 })
    }

    @Test func theCacheNeedsAFrozenMusicnnTowerWithoutSpecAugment() throws {
        var config = TrainingConfig(sampleRate: 16000)
        config.audio.kind = .musicnn
        config.audio.melBands = 96
        config.logMel = .musicnn
        config.audioTraining = .frozen
        config.audioCacheMiB = 16
        func refusal(_ c: TrainingConfig) -> String {
            do {
                try c.checkAudio(source: "the run's configuration")
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(refusal(config).contains("SpecAugment masks each example's log-mel"), "\(refusal(config))")
        config.specAugment = nil
        #expect(refusal(config) == "accepted")
        config.specAugment = SpecAugmentConfig.none   // no masks: nothing to redraw
        #expect(refusal(config) == "accepted")
        config.specAugment = nil
        config.audioTraining = .top(1)
        #expect(refusal(config).contains("the musicnn tower with --audio-train top:1"), "\(refusal(config))")
        config.audioTraining = .full
        #expect(refusal(config).contains("--audio-train full"), "\(refusal(config))")
        config.audioTraining = .frozen
        config.audioCacheMiB = -1
        #expect(refusal(config).contains("limit is -1 MiB"), "\(refusal(config))")
        var resnet = TrainingConfig(sampleRate: 16000)
        resnet.specAugment = nil
        resnet.audioCacheMiB = 16
        #expect(refusal(resnet).contains("the resnet tower"), "\(refusal(resnet))")
        // The key is written only when the cache is on, so other configurations encode as before.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(!String(decoding: try encoder.encode(TrainingConfig(sampleRate: 16000)), as: UTF8.self).contains("audioCache"))
        config.audioCacheMiB = 16
        let decoded = try JSONDecoder().decode(TrainingConfig.self, from: try encoder.encode(config))
        #expect(decoded == config && decoded.audioCacheMiB == 16)
    }
}

/// `mulan-train --audio-cache` end to end on `TimbreCorpus` (16 kHz, 30-s clips: 10 patches each;
/// 4-s windows: 1 patch).
@Suite("mulan-train --audio-cache", .serialized)
struct FrozenFeatureCacheTrainingTests {
    static let common = MusicnnTrainingTests.common + ["--audio-train", "frozen", "--no-spec-augment", "--steps", "4",
                                                       "--eval-every", "4", "--checkpoint-every", "2", "--lr", "1e-2",
                                                       "--warmup-steps", "1", "--log-every", "1",
                                                       "--batch-size", "4", "--eval-samples", "3"]

    struct Summary: Decodable {
        var audio_cache: AudioCacheStatistics?
        var final_loss: Double?
    }

    static func summary(_ run: String) throws -> Summary {
        try JSONDecoder().decode(Summary.self, from: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json")))
    }

    @Test func cachedRunsCountHitsDoNotDependOnTheLimitAndResumeExactly() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 2)
        let file = h.dir.file("musicnn.safetensors")
        try MusicnnFixture.write(file, tensors: MusicnnFixture.randomTensors(seed: 11))
        func train(_ run: String, _ extra: [String]) throws -> ProcessResult {
            try TestProcess.run(TestPaths.executable("mulan-train"),
                                ["--dataset", dataset, "--run-dir", h.dir.file(run), "--audio-init", file] + Self.common + extra)
        }
        let batches = h.dir.file("batches.jsonl")
        let big = try train("big", ["--audio-cache", "64", "--dump-batches", batches])
        try #require(big.status == 0, "\(big.stderr)")
        let stats = try #require(try Self.summary(h.dir.file("big")).audio_cache)
        // 12 train clips of 30 s (10 patches each), 4 steps of 4 windows of one patch.
        #expect(stats.capacityBytes == 64 << 20)
        #expect(stats.clips == stats.clipsComputed && stats.clips >= 1 && stats.clips <= 12, "\(stats)")
        #expect(stats.patchesComputed == 10 * stats.clipsComputed && stats.bytes == stats.patchesComputed * 800, "\(stats)")
        #expect(stats.patchHits > 0 && stats.patchHits <= 4 * 4 - stats.clips, "\(stats)")
        // Windows start on the patch grid (187 frames of 256 samples).
        for line in try String(contentsOfFile: batches, encoding: .utf8).split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for example in try #require(object["examples"] as? [[String: Any]]) {
                let offset = try #require(example["window_offset"] as? Int)
                #expect(offset % (187 * 256) == 0 && offset / (187 * 256) < 10, "window offset \(offset)")
            }
        }

        // A limit of 0 stores nothing and recomputes each drawn clip: no hits, the same weights.
        let none = try train("none", ["--audio-cache", "0"])
        try #require(none.status == 0, "\(none.stderr)")
        let noneStats = try #require(try Self.summary(h.dir.file("none")).audio_cache)
        #expect(noneStats.clips == 0 && noneStats.bytes == 0 && noneStats.patchHits == 0, "\(noneStats)")
        #expect(noneStats.clipsComputed > stats.clipsComputed, "\(noneStats) vs \(stats)")
        let a = try SafeTensors.read(h.dir.file("big/checkpoint-000004.safetensors")).tensors
        let b = try SafeTensors.read(h.dir.file("none/checkpoint-000004.safetensors")).tensors
        #expect(a["audio.proj.weight"] != nil && a == b, "the cache limit changed the trained weights")

        // Stopped at step 2 and resumed (with an empty cache): the same weights as one run.
        let first = try train("resumed", ["--audio-cache", "64", "--stop-at", "2"])
        try #require(first.status == 0, "\(first.stderr)")
        let second = try train("resumed", ["--audio-cache", "64", "--resume"])
        try #require(second.status == 0, "\(second.stderr)")
        let c = try SafeTensors.read(h.dir.file("resumed/checkpoint-000004.safetensors")).tensors
        #expect(c == a, "the resumed run differs from the uninterrupted one")

        // Combinations the cache cannot serve: exit 64, the reason named.
        let spec = try TestProcess.run(TestPaths.executable("mulan-train"),
                                       ["--dataset", dataset, "--run-dir", h.dir.file("spec"), "--audio-init", file]
                                       + MusicnnTrainingTests.common + ["--audio-train", "frozen", "--audio-cache", "8"])
        #expect(spec.status == 64 && spec.stderr.contains("SpecAugment") && spec.stderr.contains("--no-spec-augment"), "\(spec.stderr)")
        let top = try train("top", ["--audio-cache", "8", "--audio-train", "top:1"])
        #expect(top.status == 64 && top.stderr.contains("--audio-train top:1"), "\(top.stderr)")
        let dump = try train("dump", ["--audio-cache", "8", "--dump-batches", h.dir.file("b2.jsonl"),
                                      "--dump-features", h.dir.file("features")])
        #expect(dump.status == 64 && dump.stderr.contains("--dump-features"), "\(dump.stderr)")
    }
}
