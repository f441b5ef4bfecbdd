import Testing
import IPAM
import JSON
@testable import CNI
import Addresses

@Suite struct ResultTests {
    var result: CNIResult {
        var r = CNIResult()
        r.interfaces = [
            .init(name: "cni0", mac: "aa:bb:cc:dd:ee:01"), .init(name: "veth1234abcd", mac: "aa:bb:cc:dd:ee:02"),
            .init(name: "eth0", mac: "aa:bb:cc:dd:ee:03", sandbox: "/run/netns/p"),
        ]
        r.ips = [.init(address: IPNetwork(cidr: "10.244.1.2/24")!, gateway: IPAddress("10.244.1.1"), interface: 2)]
        r.routes = [Route(dst: IPNetwork(cidr: "0.0.0.0/0")!, gw: IPAddress("10.244.1.1"))]
        return r
    }

    @Test func version1ResultHasNoIPVersionField() {
        let json = result.json(version: .v1_1_0, versionText: "1.1.0").serialized()
        #expect(
            json
                == #"{"cniVersion":"1.1.0","interfaces":[{"name":"cni0","mac":"aa:bb:cc:dd:ee:01"},{"name":"veth1234abcd","mac":"aa:bb:cc:dd:ee:02"},{"name":"eth0","mac":"aa:bb:cc:dd:ee:03","sandbox":"/run/netns/p"}],"ips":[{"interface":2,"address":"10.244.1.2/24","gateway":"10.244.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}],"dns":{}}"#
        )
    }

    @Test(arguments: ["0.3.0", "0.3.1", "0.4.0"])
    func version03and04ResultsCarryIPVersion4(_ v: String) {
        let json = result.json(version: CNIVersion(v)!, versionText: v)
        #expect(json["ips"]?.arrayValue?.first?["version"]?.stringValue == "4")
        #expect(json["cniVersion"]?.stringValue == v)
    }

    @Test func version02ResultUsesIp4Block() {
        let json = result.json(version: .v0_2_0, versionText: "0.2.0")
        #expect(json["ip4"]?["ip"]?.stringValue == "10.244.1.2/24")
        #expect(json["ip4"]?["gateway"]?.stringValue == "10.244.1.1")
        #expect(json["interfaces"] == nil)
    }

    @Test func aResultParsesBackAsPrevResult() throws {
        let json = result.json(version: .v1_0_0, versionText: "1.0.0")
        #expect(try CNIResult.parse(json) == result)
    }

    @Test func errorsSerializeWithCodeMsgDetails() {
        let e = CNIError(.invalidConfig, "bad", details: "why")
        #expect(e.json(cniVersion: "1.1.0").serialized() == #"{"cniVersion":"1.1.0","code":7,"msg":"bad","details":"why"}"#)
    }
}
