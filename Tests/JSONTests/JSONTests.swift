import Testing
@testable import JSON

@Suite struct JSONParsingTests {
    @Test func objectsKeepKeyOrderAndNumbersKeepTheirText() throws {
        let text = #"{"z":1,"a":[true,false,null],"n":1.50,"big":12345678901234567890}"#
        let value = try JSONValue.parse(text)
        #expect(value.objectValue?.keys == ["z", "a", "n", "big"])
        #expect(value.serialized() == text)
    }

    @Test func escapesAndUnicodeRoundTrip() throws {
        let value = try JSONValue.parse(#"{"s":"a\"b\\c\n\u00e9\ud83d\ude00\/"}"#)
        #expect(value["s"]?.stringValue == "a\"b\\c\né😀/")
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test func controlCharactersAreEscapedOnOutput() {
        #expect(JSONValue.string("a\u{01}b").serialized() == #""a\u0001b""#)
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "{\"a\":1}x", "tru", "01", "\"\\x\"", "{'a':1}"])
    func malformedInputIsRejected(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func errorsNameTheOffset() {
        do {
            _ = try JSONValue.parse(#"{"a": tru}"#)
            Issue.record("expected a failure")
        } catch {
            #expect(error.offset == 6)
        }
    }

    @Test func intValueOnlyForIntegers() throws {
        #expect(JSONValue.number("42").intValue == 42)
        #expect(JSONValue.number("4.2").intValue == nil)
    }

    @Test func settingAKeyToNilRemovesIt() {
        var o: JSONObject = ["a": .int(1), "b": .int(2)]
        o["a"] = nil
        #expect(o.keys == ["b"])
    }
}
