/// The records that evaluation writes and reports read: one split's figures, zero-shot tagging and
/// caption retrieval, and the prompts they score. Plain Codable values, so `mulan-report` reads them
/// without the model stack (MulanTraining, OpenBLAS).

/// Evaluation figures of one split.
public struct EvaluationResult: Codable, Sendable, Equatable {
    public var split: String
    public var clips: Int
    /// Mean contrastive loss over chunks of the batch size; nil with fewer than 3 clips.
    public var loss: Double?
    public var textToAudio: Retrieval
    public var audioToText: Retrieval
    public var tagging: Tagging?

    public struct Retrieval: Codable, Sendable, Equatable {
        public var recallAt1: Double
        public var recallAt5: Double
        public var recallAt10: Double
        public var medianRank: Double
        enum CodingKeys: String, CodingKey {
            case recallAt1 = "recall_at_1", recallAt5 = "recall_at_5", recallAt10 = "recall_at_10", medianRank = "median_rank"
        }

        public init(recallAt1: Double, recallAt5: Double, recallAt10: Double, medianRank: Double) {
            self.recallAt1 = recallAt1
            self.recallAt5 = recallAt5
            self.recallAt10 = recallAt10
            self.medianRank = medianRank
        }
    }

    public struct Tagging: Codable, Sendable, Equatable {
        public var tags: Int
        public var rocAUC: Double
        public var meanAveragePrecision: Double
        enum CodingKeys: String, CodingKey { case tags, rocAUC = "roc_auc", meanAveragePrecision = "map" }

        public init(tags: Int, rocAUC: Double, meanAveragePrecision: Double) {
            self.tags = tags
            self.rocAUC = rocAUC
            self.meanAveragePrecision = meanAveragePrecision
        }
    }

    enum CodingKeys: String, CodingKey {
        case split, clips, loss, textToAudio = "text_to_audio", audioToText = "audio_to_text", tagging
    }

    public init(split: String, clips: Int, loss: Double? = nil, textToAudio: Retrieval, audioToText: Retrieval,
                tagging: Tagging? = nil) {
        self.split = split
        self.clips = clips
        self.loss = loss
        self.textToAudio = textToAudio
        self.audioToText = audioToText
        self.tagging = tagging
    }
}

/// Zero-shot tagging figures.
public struct TaggingReport: Codable, Sendable {
    public struct PerTag: Codable, Sendable {
        public var tag: String
        /// The text embedded for the tag (the prompt with the tag's words), where it differs from the tag.
        public var prompt: String?
        public var positives: Int
        public var rocAUC: Double?
        public var averagePrecision: Double?
        /// With `--exclusive`: the tag scored among its group's tags (the log-softmax of the group's
        /// similarities at the model's temperature), where the tag is in a group.
        public var exclusiveROCAUC: Double?
        public var exclusiveAveragePrecision: Double?
        enum CodingKeys: String, CodingKey {
            case tag, prompt, positives, rocAUC = "roc_auc", averagePrecision = "average_precision"
            case exclusiveROCAUC = "exclusive_roc_auc", exclusiveAveragePrecision = "exclusive_average_precision"
        }

        public init(tag: String, prompt: String? = nil, positives: Int, rocAUC: Double? = nil,
                    averagePrecision: Double? = nil) {
            self.tag = tag
            self.prompt = prompt
            self.positives = positives
            self.rocAUC = rocAUC
            self.averagePrecision = averagePrecision
        }
    }

    public var items: Int
    /// Tags with both positive and negative items: the ones the macro figures average.
    public var tagsScored: Int
    /// Tags left out (no positive or no negative item among the evaluated items).
    public var tagsSkipped: [String]
    public var macroROCAUC: Double?
    public var meanAveragePrecision: Double?
    public var perTag: [PerTag]
    /// The groups of mutually exclusive tags scored among themselves (`--exclusive`), and the
    /// temperature their similarities were divided by; nil without groups.
    public var exclusiveGroups: [[String]]?
    public var exclusiveTemperature: Double?

    enum CodingKeys: String, CodingKey {
        case items, tagsScored = "tags_scored", tagsSkipped = "tags_skipped", macroROCAUC = "macro_roc_auc"
        case meanAveragePrecision = "map", perTag = "per_tag"
        case exclusiveGroups = "exclusive_groups", exclusiveTemperature = "exclusive_temperature"
    }

    public init(items: Int, tagsScored: Int, tagsSkipped: [String], macroROCAUC: Double? = nil,
                meanAveragePrecision: Double? = nil, perTag: [PerTag]) {
        self.items = items
        self.tagsScored = tagsScored
        self.tagsSkipped = tagsSkipped
        self.macroROCAUC = macroROCAUC
        self.meanAveragePrecision = meanAveragePrecision
        self.perTag = perTag
    }
}

/// Retrieval figures of caption/audio pairs.
public struct CaptionRetrievalReport: Codable, Sendable {
    /// Captions (queries of text→audio).
    public var pairs: Int
    /// Distinct audio tracks (queries of audio→text) when tracks have several captions
    /// (`ZeroShotEvaluation.trackRetrieval`); nil when every pair is its own item.
    public var tracks: Int?
    public var textToAudio: EvaluationResult.Retrieval
    public var audioToText: EvaluationResult.Retrieval
    enum CodingKeys: String, CodingKey { case pairs, tracks, textToAudio = "text_to_audio", audioToText = "audio_to_text" }

    public init(pairs: Int, tracks: Int? = nil, textToAudio: EvaluationResult.Retrieval,
                audioToText: EvaluationResult.Retrieval) {
        self.pairs = pairs
        self.tracks = tracks
        self.textToAudio = textToAudio
        self.audioToText = audioToText
    }
}

/// A named text prompt for zero-shot scoring ("piano" = "solo piano music").
public struct Prompt: Sendable, Hashable, Codable {
    public var name: String
    public var text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

/// A linear probe on frozen audio embeddings (`mulan-eval probe`): per-tag L2-regularised logistic
/// regression, the strength chosen on the validation split, test-split ROC-AUC and PR-AUC.
public struct LinearProbeReport: Codable, Sendable {
    /// Mean validation ROC-AUC of one regularisation strength.
    public struct Candidate: Codable, Sendable {
        public var lambda: Double
        /// Macro ROC-AUC on the validation split over the tags it could score; nil when none.
        public var validROCAUC: Double?
        public var tags: Int
        enum CodingKeys: String, CodingKey { case lambda, validROCAUC = "valid_roc_auc", tags }

        public init(lambda: Double, validROCAUC: Double?, tags: Int) {
            self.lambda = lambda
            self.validROCAUC = validROCAUC
            self.tags = tags
        }
    }

    public var dim: Int
    public var trainItems: Int
    public var validItems: Int
    public var testItems: Int
    /// The objective: mean log-loss + λ/2·|w|² (the bias is not penalised).
    public var candidates: [Candidate]
    public var lambda: Double
    /// What the final classifiers were fitted on ("train+valid").
    public var refitOn: String
    /// Tags with no positive or no negative item in the training data: no classifier, not scored.
    public var tagsUntrained: [String]
    /// Test-split figures (per tag and macro; `average_precision` is the PR-AUC).
    public var test: TaggingReport

    enum CodingKeys: String, CodingKey {
        case dim, trainItems = "train_items", validItems = "valid_items", testItems = "test_items", candidates, lambda
        case refitOn = "refit_on", tagsUntrained = "tags_untrained", test
    }

    public init(dim: Int, trainItems: Int, validItems: Int, testItems: Int, candidates: [Candidate], lambda: Double,
                refitOn: String, tagsUntrained: [String], test: TaggingReport) {
        self.dim = dim
        self.trainItems = trainItems
        self.validItems = validItems
        self.testItems = testItems
        self.candidates = candidates
        self.lambda = lambda
        self.refitOn = refitOn
        self.tagsUntrained = tagsUntrained
        self.test = test
    }
}

/// Text triplet classification (`mulan-eval triplets`): how often cos(anchor, positive) >
/// cos(anchor, negative), ties counting as wrong.
public struct TripletAccuracy: Codable, Sendable, Equatable {
    public var triplets: Int
    public var correct: Int
    public var accuracy: Double
    /// Per `attribute` of the triplets file, where its lines name one.
    public var byAttribute: [String: Breakdown]

    public struct Breakdown: Codable, Sendable, Equatable {
        public var triplets: Int
        public var correct: Int
        public var accuracy: Double

        public init(triplets: Int, correct: Int) {
            self.triplets = triplets
            self.correct = correct
            accuracy = triplets == 0 ? 0 : Double(correct) / Double(triplets)
        }
    }

    enum CodingKeys: String, CodingKey { case triplets, correct, accuracy, byAttribute = "by_attribute" }

    public init(triplets: Int, correct: Int, byAttribute: [String: Breakdown]) {
        self.triplets = triplets
        self.correct = correct
        accuracy = triplets == 0 ? 0 : Double(correct) / Double(triplets)
        self.byAttribute = byAttribute
    }
}
