import Foundation
@testable import MulanCatalog
import MulanCore
import MulanFormats
import MulanTestSupport
import Testing

/// The readers of real corpora's annotation files (issue 17): MTG-Jamendo, FMA, the Million
/// Playlist Dataset and LP-MusicCaps. Each fixture is written here in the published layout (headers,
/// quoting, ragged rows, CRLF, FMA's three header lines, an MPD slice object), and every data row is
/// shown to be used or rejected with its line and reason.
@Suite("mulan-ingest text: real corpora")
struct CorpusTextFormatTests {
    /// `track|source|field|text|line|group|repaired` of the texts loaded from `file`.
    func texts(_ h: IngestHarness, _ file: String) throws -> [String] {
        try h.catalog().database.rows("""
            SELECT track_id, source, field, text, origin_line, IFNULL(group_id, ''), repaired FROM raw_texts
            WHERE origin_file LIKE ? ORDER BY origin_line, id
            """, ["%/" + file]).map { $0.map { $0.string ?? $0.int.map(String.init) ?? "" }.joined(separator: "|") }
    }

    /// `line:reason` of the rejects of `file`.
    func rejects(_ h: IngestHarness, _ file: String) throws -> [String] {
        try h.catalog().database.rows(
            "SELECT manifest_line, reason FROM rejected_rows WHERE manifest_file LIKE ? ORDER BY manifest_line",
            ["%/" + file]).map { "\($0[0].int!):\($0[1].string!)" }
    }

    func detail(_ h: IngestHarness, _ file: String, line: Int) throws -> String {
        try h.catalog().database.row("SELECT detail FROM rejected_rows WHERE manifest_file LIKE ? AND manifest_line = ?",
                                     ["%/" + file, line])?[0].string ?? ""
    }

    /// The lines that gave a text or a reject: every data line of a fixture must be among them.
    func accountedLines(_ h: IngestHarness, _ file: String) throws -> Set<Int> {
        let db = try h.catalog().database
        let used = try db.rows("SELECT DISTINCT origin_line FROM raw_texts WHERE origin_file LIKE ?", ["%/" + file])
        let rejected = try db.rows("SELECT manifest_line FROM rejected_rows WHERE manifest_file LIKE ?", ["%/" + file])
        return Set((used + rejected).compactMap { $0[0].int })
    }

    // MARK: MTG-Jamendo

    static let jamendoHeader = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"

    /// raw_30s_cleantags.tsv (LF) and a split file (CRLF): ragged rows, one field per tag.
    @Test func jamendoTagsKeepTheirCategory() throws {
        let h = IngestHarness()
        let rows = [
            Self.jamendoHeader,
            "track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t124.6\tgenre---punkrock",
            "track_0000215\tartist_000014\talbum_000031\t15/215.mp3\t167.8\tgenre---rock\tinstrument---piano\tmood/theme---happy",
            "track_0000216\tartist_000015\talbum_000032\t16/216.mp3\t212.1\tgenre---pop\tlanguage---english\tnocategory\tgenre---",
            "track_0000217\tartist_000015\talbum_000032\t17/217.mp3\t99.0",
            "track_0000218\tartist_000015\talbum_000032",
            "",
        ]
        try h.dir.write("raw_30s_cleantags.tsv", rows.joined(separator: "\n"))
        // splits/split-0/test.tsv: the same columns, lines ending with CRLF.
        try h.dir.write("test.tsv", [
            Self.jamendoHeader,
            "track_0000948\tartist_000087\talbum_000149\t48/948.mp3\t212.7\tgenre---electronic\tmood/theme---film",
            "track_0000950\tartist_000087\talbum_000149\t50/950.mp3\t229.0\tinstrument---synthesizer",
            "",
        ].joined(separator: "\r\n"))
        let r = try h.ingest(["text", "--format", "jamendo", "raw_30s_cleantags.tsv", "test.tsv", "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try texts(h, "raw_30s_cleantags.tsv") == [
            "track_0000214|tags|genre|punkrock|2||0",
            "track_0000215|tags|genre|rock|3||0",
            "track_0000215|tags|instrument|piano|3||0",
            "track_0000215|tags|mood/theme|happy|3||0",
            "track_0000216|tags|genre|pop|4||0",
        ])
        // No carriage return reaches a tag from the CRLF file.
        #expect(try texts(h, "test.tsv") == [
            "track_0000948|tags|genre|electronic|2||0",
            "track_0000948|tags|mood/theme|film|2||0",
            "track_0000950|tags|instrument|synthesizer|3||0",
        ])
        // Line 4 has three bad tags (one reject row, details joined); its good tag was kept.
        #expect(try rejects(h, "raw_30s_cleantags.tsv") == ["4:unknown-category", "5:empty-text", "6:invalid-row"])
        let line4 = try detail(h, "raw_30s_cleantags.tsv", line: 4)
        #expect(line4.contains("category \"language\" is not genre, instrument or mood/theme"), "\(line4)")
        #expect(line4.contains("tag \"nocategory\" is not category---name"), "\(line4)")
        #expect(line4.contains("an empty genre text"), "\(line4)")
        #expect(try detail(h, "raw_30s_cleantags.tsv", line: 6).contains("expected the 5 fields"))
        #expect(try accountedLines(h, "raw_30s_cleantags.tsv") == Set(2...6))
        #expect(try accountedLines(h, "test.tsv") == Set(2...3))
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["records"] as? Int == 7)
        #expect(report["texts_by_source"] as? [String: Int] == ["tags": 8])
        #expect(report["rejects_by_reason"] as? [String: Int] == ["unknown-category": 1, "invalid-row": 2, "empty-text": 2])
        // Another file's header is refused whole.
        try h.dir.write("other.tsv", "clip_id\tguitar\n2\t1\n")
        let wrong = try h.ingest(["text", "--format", "jamendo", "other.tsv"])
        #expect(wrong.status == 1 && wrong.stderr.contains("no TRACK_ID and TAGS columns"), "\(wrong.stderr)")
    }

    /// Invalid UTF-8 in the new formats: kept with U+FFFD and flagged by default, rejected with its
    /// line under `--invalid-utf8 reject`, as in the other readers.
    @Test func invalidUTF8InJamendoAndMPD() throws {
        let h = IngestHarness()
        var tsv = Data((Self.jamendoHeader + "\r\ntrack_0000001\ta\tb\t01/1.mp3\t30.0\tgenre---caf").utf8)
        tsv += Data([0xE9]) + Data("\r\ntrack_0000002\ta\tb\t02/2.mp3\t30.0\tgenre---jazz\r\n".utf8)
        try tsv.write(to: URL(fileURLWithPath: h.dir.file("utf8.tsv")))
        var slice = Data(#"{"info": {}, "playlists": [{"name": "caf"#.utf8) + Data([0xE9])
        slice += Data(#"", "pid": 9, "tracks": [{"track_uri": "spotify:track:2222222222222222222222"}]}]}"#.utf8)
        try slice.write(to: URL(fileURLWithPath: h.dir.file("mpd.slice.9-9.json")))
        try h.dir.write("map.csv", Self.trackMap)
        #expect(try h.ingest(["text", "--format", "jamendo", "utf8.tsv"]).status == 0)
        #expect(try h.ingest(["text", "--format", "mpd", "mpd.slice.9-9.json", "--track-map", "map.csv"]).status == 0)
        #expect(try texts(h, "utf8.tsv") == ["track_0000001|tags|genre|caf\u{FFFD}|2||1", "track_0000002|tags|genre|jazz|3||0"])
        #expect(try texts(h, "mpd.slice.9-9.json") == ["fma-2|playlists|name|caf\u{FFFD}|1|mpd:9|1"])
        #expect(try h.ingest(["text", "--format", "jamendo", "utf8.tsv", "--invalid-utf8", "reject"]).status == 3)
        #expect(try h.ingest(["text", "--format", "mpd", "mpd.slice.9-9.json", "--track-map", "map.csv",
                              "--invalid-utf8", "reject"]).status == 3)
        #expect(try rejects(h, "utf8.tsv") == ["2:invalid-utf8"])
        #expect(try rejects(h, "mpd.slice.9-9.json") == ["1:invalid-utf8"])
        #expect(try texts(h, "utf8.tsv") == ["track_0000002|tags|genre|jazz|3||0"])
    }

    // MARK: FMA

    /// fma_metadata/tracks.csv's columns, by group, in the published order.
    static let fmaColumns: [(String, [String])] = [
        ("album", ["comments", "date_created", "date_released", "engineer", "favorites", "id", "information", "listens",
                   "producer", "tags", "title", "tracks", "type"]),
        ("artist", ["active_year_begin", "active_year_end", "associated_labels", "bio", "comments", "date_created",
                    "favorites", "id", "latitude", "location", "longitude", "members", "name", "related_projects", "tags",
                    "website", "wikipedia_page"]),
        ("set", ["split", "subset"]),
        ("track", ["bit_rate", "comments", "composer", "date_created", "date_recorded", "duration", "favorites", "genre_top",
                   "genres", "genres_all", "information", "interest", "language_code", "license", "listens", "lyricist",
                   "number", "publisher", "tags", "title"]),
    ]

    /// A CSV field as pandas writes it: quoted when it holds a comma, a quote or a line break.
    static func quoted(_ field: String) -> String {
        field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
    }

    /// One tracks.csv data line: the track id, then every column (`group/field`), empty unless given.
    static func fmaRow(_ id: String, _ values: [String: String]) -> String {
        var fields = [id]
        for (group, names) in fmaColumns { for name in names { fields.append(values[group + "/" + name] ?? "") } }
        return fields.map(quoted).joined(separator: ",")
    }

    static var fmaHeader: [String] {
        let names = fmaColumns.flatMap { group, names in names.map { (group, $0) } }
        return ["," + names.map(\.0).joined(separator: ","),
                "," + names.map(\.1).joined(separator: ","),
                "track_id" + String(repeating: ",", count: names.count)]
    }

    static let genresCSV = """
        genre_id,#tracks,parent,title,top_level
        1,8693,38,Avant-Garde,38
        12,32923,0,Rock,12
        21,8389,0,Hip-Hop,21
        25,9261,12,Punk,12
        100,42,21,"Alternative Hip-Hop, Indie",21

        """

    /// tracks.csv with its three header lines, quoted fields holding commas and line breaks, list
    /// literals, and genres.csv naming the ids.
    @Test func fmaTracksGiveGenresTagsAndTitles() throws {
        let h = IngestHarness()
        try h.dir.write("genres.csv", Self.genresCSV)
        let lines = Self.fmaHeader + [
            Self.fmaRow("2", ["album/title": "AWOL - A Way Of Life", "album/tags": "[]", "artist/name": "AWOL",
                              "artist/bio": "<p>A Way Of Life, a band\nfrom NJ</p>", "set/split": "training",
                              "set/subset": "small", "track/genre_top": "Hip-Hop", "track/genres": "[21]",
                              "track/genres_all": "[21]", "track/tags": "[]", "track/title": "Food"]),
            Self.fmaRow("3", ["set/split": "training", "set/subset": "medium", "track/genre_top": "Rock",
                              "track/genres": "[25]", "track/genres_all": "[25, 12, 999]",
                              "track/tags": #"['punk', "rock'n'roll"]"#, "track/title": "Electric Ave, Part 2\n(live)"]),
            Self.fmaRow("5", ["set/split": "test", "set/subset": "large", "track/genres_all": "[100, 21]",
                              "track/tags": "[]"]),
            Self.fmaRow("10", ["set/split": "test", "set/subset": "large", "track/genres_all": "[]", "track/tags": "[]"]),
            Self.fmaRow("20", ["track/genre_top": "Rock", "track/genres_all": "12", "track/tags": "['ok'", "track/title": "x"]),
            "30,only,three",
            "",
        ]
        try h.dir.write("tracks.csv", lines.joined(separator: "\n"))
        let r = try h.ingest(["text", "--format", "fma", "tracks.csv", "--genres", "genres.csv", "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        // Lines 1-3 are the header (group, field, index name); track 2's artist bio spans lines 4-5 and
        // track 3's title lines 6-7.
        #expect(try texts(h, "tracks.csv") == [
            "2|tags|genre_top|Hip-Hop|4||0", "2|tags|genres_all|Hip-Hop|4||0", "2|tags|title|Food|4||0",
            "3|tags|genre_top|Rock|6||0", "3|tags|genres_all|Punk|6||0", "3|tags|genres_all|Rock|6||0",
            "3|tags|tags|punk|6||0", "3|tags|tags|rock'n'roll|6||0", "3|tags|title|Electric Ave, Part 2\n(live)|6||0",
            "5|tags|genres_all|Alternative Hip-Hop, Indie|8||0", "5|tags|genres_all|Hip-Hop|8||0",
            "20|tags|genre_top|Rock|10||0", "20|tags|title|x|10||0",
        ])
        #expect(try rejects(h, "tracks.csv") == ["6:unknown-label", "9:empty-text", "10:invalid-row", "11:invalid-row"])
        #expect(try detail(h, "tracks.csv", line: 6).contains("genre id 999 of genres_all is not in --genres"))
        let line10 = try detail(h, "tracks.csv", line: 10)
        #expect(line10.contains("genres_all is not a list literal") && line10.contains("track/tags is not a list literal"),
                "\(line10)")
        #expect(try detail(h, "tracks.csv", line: 11).contains("expected 53 fields, found 3"))
        #expect(try accountedLines(h, "tracks.csv") == Set(4...11).subtracting([5, 7]))
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["records"] as? Int == 6)
        #expect(report["texts_by_source"] as? [String: Int] == ["tags": 13])
        #expect(report["rejects_by_reason"] as? [String: Int] == ["unknown-label": 1, "empty-text": 1, "invalid-row": 3])

        // Without the index-name line (a file re-saved without it), the first data line is read.
        try h.dir.write("resaved.csv", (Array(Self.fmaHeader.prefix(2)) + [Self.fmaRow("2", ["track/title": "Food"]), ""])
            .joined(separator: "\n"))
        #expect(try h.ingest(["text", "--format", "fma", "resaved.csv", "--genres", "genres.csv"]).status == 0)
        #expect(try texts(h, "resaved.csv") == ["2|tags|title|Food|3||0"])
        // A one-row header (raw_tracks.csv) is refused; so are a missing or broken genres.csv.
        try h.dir.write("raw_tracks.csv", "track_id,album_id,track_title\n2,1,Food\n")
        let raw = try h.ingest(["text", "--format", "fma", "raw_tracks.csv", "--genres", "genres.csv"])
        #expect(raw.status == 1 && raw.stderr.contains("not tracks.csv's two rows"), "\(raw.stderr)")
        #expect(try h.ingest(["text", "--format", "fma", "tracks.csv"]).status == 64)
        try h.dir.write("bad-genres.csv", "genre_id,#tracks,parent,title,top_level\n1,2,0,Rock,1\nx,2,0,Pop,1\n")
        let bad = try h.ingest(["text", "--format", "fma", "tracks.csv", "--genres", "bad-genres.csv"])
        #expect(bad.status == 64 && bad.stderr.contains("bad-genres.csv:3"), "\(bad.stderr)")
    }

    @Test(arguments: [("[21, 811]", [21, 811]), ("[]", []), (" [ 3 ] ", [3]), ("[1,2,]", [1, 2])])
    func fmaGenreListLiterals(text: String, ids: [Int]) {
        #expect(PythonListLiteral.parseIntegers(text) == ids)
    }

    @Test(arguments: ["21", "[21", "['21']", "[1,,2]", "[,]", "[1.5]"])
    func notFMAGenreListLiterals(text: String) {
        #expect(PythonListLiteral.parseIntegers(text) == nil)
    }

    // MARK: Million Playlist Dataset

    /// A slice as published: one object, four-space indents, `info` first, tracks with every field.
    static let mpdSlice = """
        {
            "info": {
                "generated_on": "2017-12-03 08:41:42.057563",
                "slice": "0-999",
                "version": "v1"
            },
            "playlists": [
                {
                    "name": "Throwbacks",
                    "collaborative": "false",
                    "pid": 0,
                    "modified_at": 1493424000,
                    "num_tracks": 3,
                    "num_albums": 2,
                    "num_followers": 1,
                    "tracks": [
                        {
                            "pos": 0,
                            "artist_name": "Missy Elliott",
                            "track_uri": "spotify:track:0UaMYEvWZi0ZqiDOoHU3YI",
                            "artist_uri": "spotify:artist:2wIVse2owClT7go1WT98tk",
                            "track_name": "Lose Control (feat. Ciara & Fat Man Scoop)",
                            "album_uri": "spotify:album:6vV5UrXcfyQD1wu4Qo2I9K",
                            "duration_ms": 226863,
                            "album_name": "The Cookbook"
                        },
                        {
                            "pos": 1,
                            "artist_name": "Nobody",
                            "track_uri": "spotify:track:1111111111111111111111",
                            "track_name": "Not Here"
                        },
                        {
                            "pos": 2,
                            "artist_name": "Missy Elliott",
                            "track_uri": "spotify:track:0UaMYEvWZi0ZqiDOoHU3YI",
                            "track_name": "Lose Control (feat. Ciara & Fat Man Scoop)"
                        }
                    ],
                    "num_edits": 6,
                    "duration_ms": 11532414,
                    "num_artists": 2
                },
                {
                    "name": "chill {late} \\"night\\" [mix]",
                    "collaborative": "false",
                    "pid": 1,
                    "description": "for slow evenings, \\u00e0 deux",
                    "tracks": [
                        {"pos": 0, "track_uri": "spotify:track:2222222222222222222222"},
                        {"pos": 1, "track_uri": "spotify:track:0UaMYEvWZi0ZqiDOoHU3YI"}
                    ]
                },
                {
                    "name": "nothing we have",
                    "pid": 2,
                    "tracks": [
                        {"pos": 0, "track_uri": "spotify:track:1111111111111111111111"},
                        {"pos": 1, "track_uri": "spotify:track:3333333333333333333333"}
                    ]
                },
                {
                    "name": "",
                    "pid": 3,
                    "tracks": [{"pos": 0, "track_uri": "spotify:track:2222222222222222222222"}]
                },
                {
                    "name": "no pid",
                    "tracks": []
                }
            ]
        }

        """

    static let trackMap = """
        track_uri,track_id
        spotify:track:0UaMYEvWZi0ZqiDOoHU3YI,jamendo-1030
        spotify:track:2222222222222222222222,fma-2

        """

    @Test func mpdSlicesThroughATrackMap() throws {
        let h = IngestHarness()
        try h.dir.write("mpd.slice.0-999.json", Self.mpdSlice)
        try h.dir.write("map.csv", Self.trackMap)
        let r = try h.ingest(["text", "--format", "mpd", "mpd.slice.0-999.json", "--track-map", "map.csv",
                              "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        // Each playlist on the line its object starts; a track listed twice gets its text once.
        #expect(try texts(h, "mpd.slice.0-999.json") == [
            "jamendo-1030|playlists|name|Throwbacks|8|mpd:0|0",
            "fma-2|playlists|name|chill {late} \"night\" [mix]|44|mpd:1|0",
            "fma-2|playlists|description|for slow evenings, \u{E0} deux|44|mpd:1|0",
            "jamendo-1030|playlists|name|chill {late} \"night\" [mix]|44|mpd:1|0",
            "jamendo-1030|playlists|description|for slow evenings, \u{E0} deux|44|mpd:1|0",
        ])
        // The unmapped URIs: one reject for the file, on the first playlist that had one, with counts
        // and a sample; the empty playlist and the one without a pid: their own.
        #expect(try rejects(h, "mpd.slice.0-999.json") == ["8:unmapped-track", "62:empty-text", "67:invalid-row"])
        let unmapped = try detail(h, "mpd.slice.0-999.json", line: 8)
        #expect(unmapped.hasPrefix("3 track URIs (2 distinct) in 2 of 4 playlists are not in --track-map"), "\(unmapped)")
        #expect(unmapped.contains("1 playlists had no mapped track at all"), "\(unmapped)")
        #expect(unmapped.contains("First unmapped: spotify:track:1111111111111111111111, spotify:track:3333333333333333333333"))
        #expect(try detail(h, "mpd.slice.0-999.json", line: 67).contains("no pid"))
        // Every playlist is accounted for: used (8, 44), counted as unmapped (54) or rejected (62, 67).
        #expect(unmapped.contains("in 2 of 4 playlists"))
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["records"] as? Int == 5)
        #expect(report["rejects_by_reason"] as? [String: Int] == ["unmapped-track": 1, "empty-text": 1, "invalid-row": 1])
    }

    @Test func mpdBadSlicesAndMaps() throws {
        let h = IngestHarness()
        try h.dir.write("map.csv", Self.trackMap)
        // A truncated slice: the playlists before the cut are loaded, the cut one is rejected.
        let cut = Self.mpdSlice.range(of: "\"name\": \"nothing we have\"")!.lowerBound
        try h.dir.write("mpd.slice.1000-1999.json", String(Self.mpdSlice[..<cut]))
        let truncated = try h.ingest(["text", "--format", "mpd", "mpd.slice.1000-1999.json", "--track-map", "map.csv"])
        #expect(truncated.status == 3, "\(truncated.stderr)")
        #expect(try rejects(h, "mpd.slice.1000-1999.json") == ["8:unmapped-track", "54:invalid-row"])
        #expect(try detail(h, "mpd.slice.1000-1999.json", line: 54).contains("the file ends inside this playlist"))
        #expect(try texts(h, "mpd.slice.1000-1999.json").count == 5)
        // A playlist that is not JSON is rejected alone; an element that is not an object too.
        try h.dir.write("mpd.slice.2000-2999.json", """
            {"info": {"slice": "2000-2999"}, "playlists": [
            {"name": "ok", "pid": 2000, "tracks": [{"track_uri": "spotify:track:2222222222222222222222"}]},
            {"name": "bad", "pid": 2001, "tracks": [}],
            7,
            {"name": "also ok", "pid": 2002, "tracks": [{"track_uri": "spotify:track:2222222222222222222222"}]}
            ]}

            """)
        #expect(try h.ingest(["text", "--format", "mpd", "mpd.slice.2000-2999.json", "--track-map", "map.csv"]).status == 3)
        #expect(try texts(h, "mpd.slice.2000-2999.json") == ["fma-2|playlists|name|ok|2|mpd:2000|0",
                                                            "fma-2|playlists|name|also ok|5|mpd:2002|0"])
        #expect(try rejects(h, "mpd.slice.2000-2999.json") == ["3:invalid-row", "4:invalid-row"])
        // Not a slice at all: refused whole.
        try h.dir.write("list.json", "[{\"pid\": 1}]\n")
        let list = try h.ingest(["text", "--format", "mpd", "list.json", "--track-map", "map.csv"])
        #expect(list.status == 1 && list.stderr.contains("not a Million Playlist Dataset slice"), "\(list.stderr)")
        // A map that gives one URI two ids, or no map: refused before reading.
        try h.dir.write("twice.csv", "track_uri,track_id\nspotify:track:A,a\nspotify:track:A,b\n")
        let twice = try h.ingest(["text", "--format", "mpd", "mpd.slice.2000-2999.json", "--track-map", "twice.csv"])
        #expect(twice.status == 64 && twice.stderr.contains("twice.csv:3") && twice.stderr.contains("mapped twice"),
                "\(twice.stderr)")
        #expect(try h.ingest(["text", "--format", "mpd", "mpd.slice.2000-2999.json"]).status == 64)
    }

    /// An MPD slice given to the JSON Lines playlists reader: one error that names the file's kind
    /// and the format to use, for the published (indented) and a compact slice.
    @Test(arguments: [false, true])
    func mpdSliceGivenAsPlaylistsJSONL(compact: Bool) throws {
        let h = IngestHarness()
        let slice = compact
            ? Self.mpdSlice.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined()
            : Self.mpdSlice
        try h.dir.write("mpd.slice.0-999.json", slice)
        let r = try h.ingest(["text", "--format", "playlists", "mpd.slice.0-999.json"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("looks like a Spotify Million Playlist Dataset slice")
                && r.stderr.contains("--format mpd --track-map"), "\(r.stderr)")
        #expect(try h.catalog().database.row("SELECT COUNT(*) FROM rejected_rows")?[0].int == 0)
    }

    // MARK: LP-MusicCaps

    /// JSON Lines as `Dataset.to_json` writes the MSD subset and the MusicCaps subset (fname/ytid, no
    /// track_id), and CSV as `to_csv` writes the MTT subset: captions become descriptions, the
    /// attribute prediction only on request.
    @Test func lpMusicCapsCaptionsBecomeDescriptions() throws {
        let h = IngestHarness()
        try h.dir.write("lp-msd.jsonl", """
            {"track_id":"TRIHXPZ128F1466744","title":"In The Sunshine","artist_name":"ARRESTED DEVELOPMENT","release":"Zingalamaduni","year":1994,"tag":["laid back mellow","hip hop"],"caption_writing":"An amiable and laid back alternative rap tune.","caption_summary":"A summery, alternative rap song.","caption_paraphrase":"This laid back mellow rap song infuses soulful elements.","caption_attribute_prediction":"A rap song with made-up attributes.","path":"I/H/X/TRIHXPZ128F1466744.mp3"}
            {"track_id":"TRBAD","caption_writing":"Only writing.","caption_summary":null,"caption_paraphrase":["A list", "of two"],"caption_attribute_prediction":""}
            {"title":"no id","caption_writing":"x"}
            {"track_id":"TRNONE","tag":["rock"]}
            {"track_id":"TRNUM","caption_writing":42}

            """)
        try h.dir.write("lp-mc.jsonl", """
            {"fname":"[-0Gj8-vB1q4]-[30-40]","ytid":"-0Gj8-vB1q4","aspect_list":"['low quality']","caption_ground_truth":"The low quality recording features a sad strings melody.","caption_writing":"A melancholic string piece.","caption_summary":"Sad strings.","caption_paraphrase":"Strings, sadly.","caption_attribute_prediction":"Attr.","start_s":30,"end_s":40,"is_audioset_eval":true}

            """)
        try h.dir.write("lp-mtt.csv", """
            track_id,tag,caption_writing,caption_summary,caption_paraphrase,caption_attribute_prediction,path
            2,"['guitar', 'classical']","A classical guitar piece, played slowly.","Slow ""classical"" guitar.","A calm piece
            for guitar.",Attribute text.,f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-0-29.mp3
            6,"['techno']",,,,,x.mp3

            """)
        let r = try h.ingest(["text", "--format", "lp-musiccaps", "lp-msd.jsonl", "lp-mc.jsonl", "lp-mtt.csv",
                              "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try texts(h, "lp-msd.jsonl") == [
            "TRIHXPZ128F1466744|descriptions|caption_writing|An amiable and laid back alternative rap tune.|1||0",
            "TRIHXPZ128F1466744|descriptions|caption_summary|A summery, alternative rap song.|1||0",
            "TRIHXPZ128F1466744|descriptions|caption_paraphrase|This laid back mellow rap song infuses soulful elements.|1||0",
            "TRBAD|descriptions|caption_writing|Only writing.|2||0",
            "TRBAD|descriptions|caption_paraphrase|A list|2||0",
            "TRBAD|descriptions|caption_paraphrase|of two|2||0",
        ])
        #expect(try rejects(h, "lp-msd.jsonl") == ["2:empty-text", "3:invalid-row", "4:empty-text", "5:invalid-row"])
        #expect(try detail(h, "lp-msd.jsonl", line: 2) == "an empty caption_summary text")
        #expect(try detail(h, "lp-msd.jsonl", line: 5).contains("caption_writing must be a string"))
        #expect(try accountedLines(h, "lp-msd.jsonl") == Set(1...5))
        #expect(try texts(h, "lp-mc.jsonl") == [
            "-0Gj8-vB1q4|descriptions|caption_writing|A melancholic string piece.|1||0",
            "-0Gj8-vB1q4|descriptions|caption_summary|Sad strings.|1||0",
            "-0Gj8-vB1q4|descriptions|caption_paraphrase|Strings, sadly.|1||0",
        ])
        #expect(try texts(h, "lp-mtt.csv") == [
            "2|descriptions|caption_writing|A classical guitar piece, played slowly.|2||0",
            "2|descriptions|caption_summary|Slow \"classical\" guitar.|2||0",
            "2|descriptions|caption_paraphrase|A calm piece\nfor guitar.|2||0",
        ])
        #expect(try rejects(h, "lp-mtt.csv") == ["4:empty-text"])

        // The MusicCaps subset's rows land on the track ids the musiccaps reader gives the same clips.
        try h.dir.write("musiccaps-public.csv", """
            ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval
            -0Gj8-vB1q4,30,40,/m/04rlf,"['low quality']",The low quality recording features a sad strings melody.,4,False,True

            """)
        #expect(try h.ingest(["text", "--format", "musiccaps", "musiccaps-public.csv", "--labels",
                              TestPaths.audioSetOntology]).status == 0)
        #expect(Set(try texts(h, "musiccaps-public.csv").map { $0.prefix(while: { $0 != "|" }) }) == ["-0Gj8-vB1q4"])

        // On request, the attribute prediction too (a changed option re-reads the file).
        #expect(try h.ingest(["text", "--format", "lp-musiccaps", "lp-mc.jsonl", "--attribute-prediction"]).status == 0)
        #expect(try texts(h, "lp-mc.jsonl").last == "-0Gj8-vB1q4|descriptions|caption_attribute_prediction|Attr.|1||0")
        #expect(try h.ingest(["text", "--format", "mtat", "lp-mtt.csv", "--attribute-prediction"]).status == 64)
    }

    @Test func lpMusicCapsRefusesParquetAndJSONArrays() throws {
        let h = IngestHarness()
        try Data("PAR1\u{15}\u{04}\u{15}".utf8).write(to: URL(fileURLWithPath: h.dir.file("train.parquet")))
        let parquet = try h.ingest(["text", "--format", "lp-musiccaps", "train.parquet"])
        #expect(parquet.status == 64 && parquet.stderr.contains("is Parquet") && parquet.stderr.contains("to_json"),
                "\(parquet.stderr)")
        try h.dir.write("array.json", "[{\"track_id\": \"a\", \"caption_writing\": \"x\"}]\n")
        let array = try h.ingest(["text", "--format", "lp-musiccaps", "array.json"])
        #expect(array.status == 64 && array.stderr.contains("one JSON array"), "\(array.stderr)")
        try h.dir.write("other.csv", "ytid,caption\nabc,x\n")
        let other = try h.ingest(["text", "--format", "lp-musiccaps", "other.csv"])
        #expect(other.status == 1 && other.stderr.contains("no caption_writing/summary/paraphrase column"), "\(other.stderr)")
    }
}
