import Foundation
import MulanCore
import MulanDSP
import MulanTensor
import MulanTestSupport
@testable import MulanTraining
import Testing

/// The pitch-class branch of `mulan-train --pitch-profiles` (docs/training.md): the profile of a
/// window (`PitchClassProfile`) against a direct reference, the branch's transposition invariance,
/// start and gradients, and the option end to end (training, resuming, the frozen-feature cache,
/// mulan-embed).
struct PitchClassTests {
    /// Sines at `frequencies` (Hz) at 16 kHz, each of amplitude 0.2.
    static func tones(_ frequencies: [Double], seconds: Double, rate: Int = 16000) -> [Float] {
        (0..<Int(seconds * Double(rate))).map { i in
            let t = Double(i) / Double(rate)
            return Float(frequencies.reduce(0.0) { $0 + 0.2 * sin(2 * .pi * $1 * t) })
        }
    }

    /// The profile as the spec words it, in Double, with a direct DFT of the counted bins.
    static func reference(_ x: [Float], rate: Int) -> [Double] {
        var n = 4
        while Double(n) < 0.2 * Double(rate) { n *= 2 }
        let hop = n / 2
        let low = 440 * pow(2, (36.0 - 69) / 12), high = 440 * pow(2, (96.0 - 69) / 12)
        let frames = x.count <= n ? 1 : 1 + (x.count - n) / hop
        var sums = [Double](repeating: 0, count: 12)
        var counted = 0
        for t in 0..<frames {
            var frame = [Double](repeating: 0, count: 12)
            let windowed = (0..<n).map { i -> Double in
                let s = t * hop + i
                let w = 0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(n))
                return s < x.count ? w * Double(x[s]) : 0
            }
            for k in 1..<(n / 2) {
                let f = Double(k) * Double(rate) / Double(n)
                guard f >= low, f < high else { continue }
                var re = 0.0, im = 0.0
                for (i, v) in windowed.enumerated() where v != 0 {
                    let phase = -2 * Double.pi * Double(k * i % n) / Double(n)
                    re += v * cos(phase)
                    im += v * sin(phase)
                }
                let pc = ((Int((69 + 12 * log2(f / 440)).rounded()) % 12) + 12) % 12
                frame[pc] += re * re + im * im
            }
            let total = frame.reduce(0, +)
            guard total > 1e-10 else { continue }
            for c in 0..<12 { sums[c] += frame[c] / total }
            counted += 1
        }
        return counted == 0 ? sums : sums.map { $0 / Double(counted) }
    }

    @Test func theProfileIsTheSpecsDFTFoldedToPitchClasses() throws {
        // A C-major triad with a little noise, 0.7 s: 4096-sample frames at hop 2048, 4 frames.
        var random = RandomSource(seed: 3)
        let x = Self.tones([261.63, 329.63, 392.0, 98.0], seconds: 0.7).map { $0 + 0.01 * (random.unitFloat() - 0.5) }
        let calculator = try PitchClassProfile(sampleRate: 16000)
        #expect(calculator.fftSize == 4096 && calculator.frameCount(sampleCount: x.count) == 4)
        let (profile, frames) = calculator.compute(x)
        let expected = Self.reference(x, rate: 16000)
        #expect(frames == 4)
        #expect(zip(profile, expected).allSatisfy { abs(Double($0) - $1) < 1e-5 }, "\(profile) vs \(expected)")
        #expect(abs(profile.reduce(0, +) - 1) < 1e-5)
        // C, E and G hold nearly everything.
        #expect(profile[0] + profile[4] + profile[7] > 0.9, "\(profile)")

        // Another rate: 22,050 Hz takes an FFT of 8192.
        let other = try PitchClassProfile(sampleRate: 22050)
        #expect(other.fftSize == 8192)
        let a = Self.tones([440], seconds: 0.5, rate: 22050)
        let pa = other.compute(a).profile
        #expect(zip(pa, Self.reference(a, rate: 22050)).allSatisfy { abs(Double($0) - $1) < 1e-5 })
        #expect(pa[9] > 0.95, "A4 is pitch class 9: \(pa)")
    }

    @Test func silenceShortInputAndTransposition() throws {
        let calculator = try PitchClassProfile(sampleRate: 16000)
        // Silence: no frame counts, all zeros.
        let silent = calculator.compute([Float](repeating: 0, count: 20000))
        #expect(silent.frames == 0 && silent.profile == [Float](repeating: 0, count: 12))
        #expect(calculator.compute([]).frames == 0)
        // Shorter than one FFT: one zero-padded frame.
        let short = Self.tones([440], seconds: 0.1)
        let s = calculator.compute(short)
        #expect(s.frames == 1 && s.profile[9] == s.profile.max() && s.profile[9] > 0.5, "\(s.profile)")
        #expect(zip(s.profile, Self.reference(short, rate: 16000)).allSatisfy { abs(Double($0) - $1) < 1e-5 })
        // A chord two semitones up moves its mass two classes up.
        let c = calculator.compute(Self.tones([261.63, 329.63, 392.0], seconds: 1)).profile
        let d = calculator.compute(Self.tones([293.66, 369.99, 440.0], seconds: 1)).profile
        for k in 0..<12 { #expect(abs(c[k] - d[(k + 2) % 12]) < 0.05, "class \(k): \(c[k]) vs \(d[(k + 2) % 12])") }
        // Rates the profile cannot serve are a usage error.
        #expect(throws: MulanError.self) { try PitchClassProfile(sampleRate: 4000) }
    }

    static func branch(profiles k: Int = 3, dim: Int = 6, seed: UInt64 = 5) -> PitchClassBranch {
        var random = RandomSource(seed: seed)
        return PitchClassBranch(profiles: k, embeddingDim: dim, random: &random)
    }

    static func randomProfiles(_ rows: Int, seed: UInt64) -> Tensor {
        var random = RandomSource(seed: seed)
        var t = Tensor(shape: [rows, 12])
        for r in 0..<rows {
            let v = (0..<12).map { _ in random.unitFloat() }
            let sum = v.reduce(0, +)
            for j in 0..<12 { t.storage[r * 12 + j] = v[j] / sum }
        }
        return t
    }

    @Test func theBranchStartsAsKeyCorrelationsAndANoOp() {
        let b = Self.branch()
        let c = Self.randomProfiles(5, seed: 9)
        let f = b.features(c, training: false)
        func pearson(_ x: [Double], _ y: [Double]) -> Double {
            let mx = x.reduce(0, +) / 12, my = y.reduce(0, +) / 12
            let sxy = zip(x, y).reduce(0.0) { $0 + ($1.0 - mx) * ($1.1 - my) }
            let sxx = x.reduce(0.0) { $0 + ($1 - mx) * ($1 - mx) }, syy = y.reduce(0.0) { $0 + ($1 - my) * ($1 - my) }
            return sxy / (sxx * syy).squareRoot()
        }
        for row in 0..<5 {
            let chroma = (0..<12).map { Double(c.storage[row * 12 + $0]) }
            for (k, key) in [PitchClassBranch.krumhanslKesslerMajor, PitchClassBranch.krumhanslKesslerMinor].enumerated() {
                let profile = key.map(Double.init)
                // np.roll(profile, tonic): the profile's tonic on pitch class `tonic`.
                let best = (0..<12).map { tonic in pearson(chroma, (0..<12).map { profile[(($0 - tonic) % 12 + 12) % 12] }) }.max()!
                #expect(abs(Double(f.storage[row * 3 + k]) - best) < 1e-5, "row \(row) profile \(k): \(f.storage[row * 3 + k]) vs \(best)")
            }
        }
        // proj starts at zero: the tower's unit-norm embedding comes out unchanged.
        var random = RandomSource(seed: 4)
        let a = L2Normalize().forward(Tensor.normal(shape: [5, 6], std: 1, using: &random), training: false)
        let e = b.forward(audio: a, pitchClasses: c, training: false)
        #expect(zip(e.storage, a.storage).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func theBranchIsTranspositionInvariant() {
        let b = Self.branch(profiles: 4)
        var random = RandomSource(seed: 8)
        b.proj.weight.value = Tensor.normal(shape: b.proj.weight.value.shape, std: 0.5, using: &random)
        let c = Self.randomProfiles(3, seed: 2)
        let a = L2Normalize().forward(Tensor.normal(shape: [3, 6], std: 1, using: &random), training: false)
        let e = b.forward(audio: a, pitchClasses: c, training: false)
        for shift in 1..<12 {
            var rolled = c
            for row in 0..<3 { for j in 0..<12 { rolled.storage[row * 12 + (j + shift) % 12] = c.storage[row * 12 + j] } }
            let er = b.forward(audio: a, pitchClasses: rolled, training: false)
            #expect(zip(e.storage, er.storage).allSatisfy { abs($0 - $1) < 1e-6 }, "shift \(shift)")
        }
        // A flat profile (or silence) standardizes to zeros: the branch adds only its bias.
        let flat = Tensor(shape: [1, 12], repeating: 1 / 12)
        #expect(b.features(flat, training: false).storage.allSatisfy { $0 == 0 })
    }

    @Test func branchGradientsMatchCentralDifferences() {
        let b = Self.branch(profiles: 3, dim: 5)
        var random = RandomSource(seed: 12)
        b.proj.weight.value = Tensor.normal(shape: b.proj.weight.value.shape, std: 0.5, using: &random)
        b.proj.bias!.value = Tensor.normal(shape: [5], std: 0.1, using: &random)
        let c = Self.randomProfiles(4, seed: 6)
        let a = L2Normalize().forward(Tensor.normal(shape: [4, 5], std: 1, using: &random), training: false)
        let bad = TrainingGradientCheck.check(input: a, parameters: b.namedParameters,
                                              forward: { b.forward(audio: $0, pitchClasses: c, training: true) },
                                              backward: { b.backward($0) }, epsilon: 1e-3, tolerance: 2e-2)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        #expect(b.profiles.grad.storage.contains { $0 != 0 } && b.proj.weight.grad.storage.contains { $0 != 0 })
    }

    @Test func theConfigurationKeepsTheProfileCount() throws {
        var config = TrainingConfig(sampleRate: 16000)
        #expect(config.pitchProfiles == 0)
        config.pitchProfiles = 4
        let data = try JSONEncoder().encode(config)
        #expect(try JSONDecoder().decode(TrainingConfig.self, from: data).pitchProfiles == 4)
        // A configuration saved before the key existed has no branch.
        var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        object["pitchProfiles"] = nil
        let old = try JSONDecoder().decode(TrainingConfig.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(old.pitchProfiles == 0)
        let model = MuLanModel(config)
        let names = model.namedParameters.map(\.name).filter { $0.hasPrefix("pitch.") }
        #expect(names == ["pitch.profiles", "pitch.norm.weight", "pitch.norm.bias", "pitch.norm.running_mean", "pitch.norm.running_var",
                          "pitch.proj.weight", "pitch.proj.bias"])
        #expect(MuLanModel(old).pitch == nil)
        // The branch's learning-rate scale (--pitch-lr-scale): kept, 1 when missing, refused out of range or
        // without a branch.
        #expect(config.pitchLearningRateScale == 1 && old.pitchLearningRateScale == 1)
        config.pitchLearningRateScale = 10
        #expect(try JSONDecoder().decode(TrainingConfig.self, from: JSONEncoder().encode(config)).pitchLearningRateScale == 10)
        try config.checkAudio(source: "test")
        for bad: Float in [0, -1, 1001, .nan] {
            config.pitchLearningRateScale = bad
            #expect(throws: MulanError.self) { try config.checkAudio(source: "test") }
        }
        var noBranch = TrainingConfig(sampleRate: 16000)
        noBranch.pitchLearningRateScale = 10
        #expect(throws: MulanError.self) { try noBranch.checkAudio(source: "test") }
        config.pitchLearningRateScale = 1
        config.pitchProfiles = 65
        #expect(throws: MulanError.self) { try config.checkAudio(source: "test") }
    }
}

/// `mulan-train --pitch-profiles` end to end on `TimbreCorpus`.
@Suite("mulan-train --pitch-profiles", .serialized)
struct PitchClassTrainingTests {
    @Test func trainsResumesEmbedsAndCachesWithTheBranch() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 2)
        func train(_ run: String, _ extra: [String], profiles: String = "3") throws -> ProcessResult {
            try TestProcess.run(TestPaths.executable("mulan-train"),
                                ["--dataset", dataset, "--run-dir", h.dir.file(run), "--pitch-profiles", profiles]
                                + TrainingEndToEndTests.tiny + extra)
        }
        let steps = ["--steps", "3", "--eval-every", "3", "--checkpoint-every", "3", "--lr", "1e-2", "--warmup-steps", "1",
                     "--eval-samples", "6", "--threads", "2"]
        let r = try train("run", steps)
        try #require(r.status == 0, "\(r.stderr)")
        let trained = try SafeTensors.read(h.dir.file("run/checkpoint-000003.safetensors"))
        #expect(trained.metadata["config"]?.contains(#""pitchProfiles":3"#) == true)
        #expect(trained.tensors["pitch.profiles"]?.shape == [3, 12])
        let proj = try #require(trained.tensors["pitch.proj.weight"])
        #expect(proj.shape == [128, 3] && proj.storage.contains { $0 != 0 }, "the branch did not train")
        #expect(trained.tensors.keys.contains("optimizer.m.pitch.profiles"))

        // Stopped after step 1 and resumed: the same weights as one run.
        let first = try train("resumed", steps + ["--stop-at", "1"])
        try #require(first.status == 0, "\(first.stderr)")
        // --pitch-lr-scale: the first step's gradients do not depend on the rate and the branch's projection
        // starts at zero, so after one step at 10 it is ten times what it is at 1; all else is the same.
        let scaled = try train("scaled", steps + ["--stop-at", "1", "--pitch-lr-scale", "10"])
        try #require(scaled.status == 0, "\(scaled.stderr)")
        let plain1 = try SafeTensors.read(h.dir.file("resumed/checkpoint-000001.safetensors")).tensors
        let scaled1 = try SafeTensors.read(h.dir.file("scaled/checkpoint-000001.safetensors"))
        #expect(scaled1.metadata["config"]?.contains(#""pitchLearningRateScale":10"#) == true)
        for name in ["pitch.proj.weight", "pitch.proj.bias"] {
            let a = try #require(plain1[name]?.storage), b = try #require(scaled1.tensors[name]?.storage)
            #expect(a.contains { abs($0) > 1e-3 } && zip(a, b).allSatisfy { abs(10 * $0 - $1) <= 1e-5 * abs($1) + 1e-8 }, "\(name)")
        }
        let outside = plain1.keys.filter { !$0.hasPrefix("pitch.") && !$0.hasPrefix("optimizer.") }
        #expect(!outside.isEmpty && outside.allSatisfy { plain1[$0] == scaled1.tensors[$0] }, "the scale reached the towers")
        let second = try train("resumed", steps + ["--resume"])
        try #require(second.status == 0, "\(second.stderr)")
        let resumed = try SafeTensors.read(h.dir.file("resumed/checkpoint-000003.safetensors")).tensors
        #expect(resumed == trained.tensors, "the resumed run differs from the uninterrupted one")

        // mulan-embed: each window's tower embedding combined with its pitch classes, averaged.
        let wav = h.dir.file("files/chord.wav")
        try EmbedSearchEvalTests.generate(wav, classIndex: 1, frequency: 330, seconds: 9)
        let out = h.dir.file("index")
        let embed = try TestProcess.run(TestPaths.executable("mulan-embed"), [
            "--run-dir", h.dir.file("run"), "--audio", wav, "--out", out, "--threads", "2", "--quiet"])
        try #require(embed.status == 0, "\(embed.stderr)")
        let row = try EmbeddingIndex(directory: out).embedding(0)
        let embedder = try Embedder(checkpoint: h.dir.file("run/checkpoint-000003.safetensors"), vocabulary: nil)
        let samples = try Embedder.decodeFile(wav, sampleRate: 16000).get()
        let direct = try #require(embedder.embed(clips: [samples]).first ?? nil)
        #expect(zip(direct.embedding, row).allSatisfy { abs($0 - $1) < 1e-5 }, "mulan-embed and Embedder differ")
        // By hand: the windows' tower outputs, the branch, the mean, normalized.
        let model = embedder.model, config = embedder.config
        let offsets = embedder.windowOffsets(sampleCount: samples.count)
        let logMel = try LogMelSpectrogram(config: config.logMel)
        let pitch = try PitchClassProfile(sampleRate: 16000)
        let t = logMel.frameCount(sampleCount: config.windowSamples), m = config.logMel.melBands
        var x = Tensor(shape: [offsets.count, m, t]), c = Tensor(shape: [offsets.count, 12])
        for (k, o) in offsets.enumerated() {
            let w = AudioFrontEnd.window(samples, offset: o, length: config.windowSamples)
            for (j, v) in logMel.compute(w).values.enumerated() { x.storage[k * m * t + j] = v }
            for (j, v) in pitch.compute(w).profile.enumerated() { c.storage[k * 12 + j] = v }
        }
        let tower = model.audio.forward(x, training: false)
        let e = model.audioEmbedding(tower: tower, pitchClasses: c, training: false)
        var mean = [Float](repeating: 0, count: 128)
        for k in 0..<offsets.count { for j in 0..<128 { mean[j] += e.storage[k * 128 + j] } }
        let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(zip(mean, row).allSatisfy { abs($0 / norm - $1) < 1e-5 }, "mulan-embed is not the branch's combination")
        var plain = [Float](repeating: 0, count: 128)
        for k in 0..<offsets.count { for j in 0..<128 { plain[j] += tower.storage[k * 128 + j] } }
        let plainNorm = plain.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(zip(plain, row).contains { abs($0 / plainNorm - $1) > 1e-4 }, "the branch changed nothing")

        // Bad input: a count the branch does not take.
        let refused = try train("nope", steps, profiles: "65")
        #expect(refused.status == 64 && refused.stderr.contains("--pitch-profiles"), "\(refused.stderr)")
        let noBranch = try train("nope-scale", steps + ["--pitch-lr-scale", "10"], profiles: "0")
        #expect(noBranch.status == 64 && noBranch.stderr.contains("--pitch-lr-scale"), "\(noBranch.stderr)")
    }

    @Test func theFrozenFeatureCacheKeepsPitchClassesAndItsLimitChangesNothing() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 2)
        let file = h.dir.file("musicnn.safetensors")
        try MusicnnFixture.write(file, tensors: MusicnnFixture.randomTensors(seed: 11))
        func train(_ run: String, _ extra: [String]) throws -> ProcessResult {
            try TestProcess.run(TestPaths.executable("mulan-train"),
                                ["--dataset", dataset, "--run-dir", h.dir.file(run), "--audio-init", file, "--pitch-profiles", "2"]
                                + FrozenFeatureCacheTrainingTests.common + extra)
        }
        let big = try train("big", ["--audio-cache", "64"])
        try #require(big.status == 0, "\(big.stderr)")
        let stats = try #require(try FrozenFeatureCacheTrainingTests.summary(h.dir.file("big")).audio_cache)
        // 200 features and 13 pitch-class floats (12 sums and a frame count) per patch.
        #expect(stats.bytes == stats.patchesComputed * 852, "\(stats)")
        let none = try train("none", ["--audio-cache", "0"])
        try #require(none.status == 0, "\(none.stderr)")
        let a = try SafeTensors.read(h.dir.file("big/checkpoint-000004.safetensors")).tensors
        let b = try SafeTensors.read(h.dir.file("none/checkpoint-000004.safetensors")).tensors
        #expect(a["pitch.proj.weight"]?.storage.contains { $0 != 0 } == true, "the branch did not train")
        #expect(a == b, "the cache limit changed the trained weights")
    }

    @Test func aCachedWindowsProfileFollowsItsPatches() throws {
        // A steady chord: the window put together from patch sums is close to the window's own profile.
        let samples = PitchClassTests.tones([261.63, 311.13, 392.0], seconds: 30)
        let pool = try PitchClassPool(sampleRate: 16000)
        let length = MusicnnTower.patchFrames * 256
        var sums = [Float](repeating: 0, count: 12), frames = 0
        for p in 3..<6 {
            let part = pool.sums(samples[(p * length)..<((p + 1) * length)])
            for j in 0..<12 { sums[j] += part.sums[j] }
            frames += part.frames
        }
        let own = pool.profile(Array(samples[(3 * length)..<(6 * length)]))
        #expect(frames > 0)
        #expect(zip(sums, own).allSatisfy { abs($0 / Float(frames) - $1) < 0.01 }, "\(sums.map { $0 / Float(frames) }) vs \(own)")
    }
}
