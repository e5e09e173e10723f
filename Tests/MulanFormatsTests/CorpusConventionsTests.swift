import MulanCore
import MulanFormats
import Testing

/// The corpora's own rules, on the names and values of the published files.
@Suite("Corpus conventions")
struct CorpusConventionsTests {
    @Test(arguments: [
        ("autotagging_top50tags-test.tsv", "test"), ("splits/split-0/autotagging-test.tsv", "test"),
        ("autotagging_moodtheme-validation.tsv", "valid"), ("autotagging_genre-train.tsv", "train"),
        ("test.tsv", "test"), ("validation.tsv", "valid"), ("raw_30s_cleantags.tsv", nil), ("autotagging.tsv", nil),
        ("contest.tsv", nil),
    ] as [(String, String?)])
    func jamendoSplitFromTheFileName(name: String, split: String?) {
        #expect(JamendoConventions.split(fileName: name) == split)
    }

    @Test func jamendoTagsAndAudioPaths() {
        #expect(JamendoConventions.tag("mood/theme---happy").map { [$0.category, $0.name] } == ["mood/theme", "happy"])
        #expect(JamendoConventions.tag("rock") == nil)
        #expect(JamendoConventions.audioPaths("14/214.mp3") == ["14/214.mp3", "14/214.low.mp3"])
        #expect(JamendoConventions.audioPaths("14/214.low.mp3") == ["14/214.low.mp3"])
    }

    @Test func mtatFolderSplitAndTopTags() {
        #expect(["0/a.mp3", "b/a.mp3", "c/a.mp3", "d/a.mp3", "f/a.mp3", "g/a.mp3", "a.mp3"].map(MTATConventions.split)
                == ["train", "train", "valid", "test", "test", nil, nil])
        #expect(MTATConventions.mostFrequent(["rock": 3, "pop": 5, "jazz": 3, "folk": 1], 3) == ["pop", "jazz", "rock"])
    }

    @Test func musicCapsAndAudioSetValues() {
        #expect(["True", "true", "1", " TRUE"].allSatisfy(MusicCapsConventions.isAudioSetEval))
        #expect(!["False", "0", ""].contains(where: MusicCapsConventions.isAudioSetEval))
        #expect(AudioSetConventions.labelIDs(" /m/04rlf, /m/064t9,") == ["/m/04rlf", "/m/064t9"])
        #expect(AudioSetConventions.audioNames(ytid: "abc", start: 30, end: 40.5).contains("abc_30-40.5"))
        #expect(AudioSetConventions.split(fileName: "/x/eval_segments.csv") == "test")
        #expect(AudioSetConventions.split(fileName: "balanced_train_segments.csv") == "train")
    }
}
