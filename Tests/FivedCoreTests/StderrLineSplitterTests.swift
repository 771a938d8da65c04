import Testing
@testable import FivedCore

@Suite("stderr line splitter")
struct StderrLineSplitterTests {
    func lines(_ chunks: [[UInt8]], flush: Bool = true) -> [[UInt8]] {
        var splitter = StderrLineSplitter()
        var out: [[UInt8]] = []
        for chunk in chunks { chunk.withUnsafeBytes { splitter.feed($0) { out.append($0) } } }
        if flush { splitter.flush { out.append($0) } }
        return out
    }

    @Test func splitsAtNewlines() {
        #expect(lines([Array("one\ntwo\n".utf8)]) == [Array("one".utf8), Array("two".utf8)])
    }

    @Test func aLineSpreadOverReadsComesOutWhole() {
        #expect(lines([Array("hal".utf8), Array("f\nrest".utf8)], flush: false) == [Array("half".utf8)])
    }

    @Test func theLastUnterminatedLineComesOutOnFlush() {
        #expect(lines([Array("a\nb".utf8)]) == [Array("a".utf8), Array("b".utf8)])
    }

    @Test func aLongLineIsSplitWithoutLosingAByte() {
        let long = (0..<1030).map { UInt8(65 + $0 % 26) }
        let out = lines([long + [0x0A]])
        #expect(out.map(\.count) == [1024, 6])
        #expect(out.joined().elementsEqual(long))
    }

    @Test func splitsOfExactlyTheMaximum() {
        let long = [UInt8](repeating: 0x41, count: 2048)
        #expect(lines([long]).map(\.count) == [1024, 1024])
    }

    @Test func emptyLinesAreNotEmitted() {
        #expect(lines([Array("\n\nx\n\n".utf8)]) == [Array("x".utf8)])
    }
}
