import Testing
@testable import CNI

/// The reference bridge's options beyond addressing: parsing, defaults and refusals.
@Suite struct BridgeOptionsTests {
    let v4 = #""ipam":{"type":"host-local","subnet":"10.244.1.0/24"}"#

    func config(_ fields: String, version: String = "1.1.0") -> String {
        #"{"cniVersion":"\#(version)","name":"n","type":"bridge-ipam"\#(fields.isEmpty ? "" : ",")\#(fields)}"#
    }

    @Test func optionsDefaultOff() throws {
        let c = try parse(config(v4))
        #expect(!c.enableDAD && !c.macSpoofCheck && !c.disableContainerInterface && !c.portIsolation && c.argsMAC == nil)
    }

    @Test func optionsAreRead() throws {
        let c = try parse(
            config(v4 + #","enabledad":true,"macspoofchk":true,"portIsolation":true,"args":{"cni":{"mac":"02:00:00:00:00:01"}}"#))
        #expect(c.enableDAD && c.macSpoofCheck && c.portIsolation)
        #expect(c.argsMAC == "02:00:00:00:00:01")
    }

    @Test func anEmptyIPAMSectionIsLayer2Only() throws {
        #expect(try parse(config(#""ipam":{}"#)).ipam.isLayer2Only)
        #expect(code(of: config("")) == 7)
        #expect(try parse(config(#""ipam":{},"disableContainerInterface":true"#)).disableContainerInterface)
        #expect(code(of: config(#""ipam":{"subnet":"10.244.1.0/24"}"#)) == 7)
        #expect(code(of: config(#""ipam":{},"ipMasq":true"#)) == 7)
    }

    @Test func disableContainerInterfaceNeedsLayer2Only() {
        #expect(code(of: config(v4 + #","disableContainerInterface":true"#)) == 7)
    }

    @Test func vlanOptionsAreRefused() {
        #expect(code(of: config(v4 + #","vlan":3"#)) == 2)
        #expect(code(of: config(v4 + #","vlanTrunk":[{"minID":2,"maxID":4}]"#)) == 2)
        #expect(code(of: config(v4 + #","preserveDefaultVlan":false"#)) == 2)
        #expect(code(of: config(v4 + #","preserveDefaultVlan":true,"vlan":0,"vlanTrunk":[]"#)) == nil)
    }

    @Test func onlyTheNFTablesMasqueradeBackendIsAccepted() {
        #expect(code(of: config(v4 + #","ipMasq":true,"ipMasqBackend":"iptables""#)) == 2)
        #expect(code(of: config(v4 + #","ipMasq":true,"ipMasqBackend":"nftables""#)) == nil)
    }

    @Test func hairpinAndPromiscuousModeExcludeEachOther() {
        #expect(code(of: config(v4 + #","hairpinMode":true,"promiscMode":true"#)) == 7)
    }

    @Test func resultsBefore030RefuseTwoAddressesOfOneFamily() {
        let two6 =
            #""ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}],[{"subnet":"fd00:2::/64"}]]}"#
        let dual = #""ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]]}"#
        #expect(code(of: config(two6, version: "0.2.0")) == 1)
        #expect(code(of: config(two6, version: "0.1.0")) == 1)
        #expect(code(of: config(two6, version: "0.3.0")) == nil)
        #expect(code(of: config(dual, version: "0.2.0")) == nil)
    }
}
