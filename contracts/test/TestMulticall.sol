// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title TestMulticall
/// @notice A Multicall3-shaped aggregator for walletgate's tests: it makes each listed call
///         itself, forwarding the value each call names out of msg.value.
contract TestMulticall {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Call3Value {
        address target;
        bool allowFailure;
        uint256 value;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    /// @notice Makes every call, with no value; a failed call reverts unless allowed to fail.
    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory results) {
        results = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            results[i] = _call(calls[i].target, calls[i].allowFailure, 0, calls[i].callData);
        }
    }

    /// @notice Makes every call with its value; the values must add up to msg.value.
    function aggregate3Value(Call3Value[] calldata calls) external payable returns (Result[] memory results) {
        uint256 total = 0;
        results = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            total += calls[i].value;
            results[i] = _call(calls[i].target, calls[i].allowFailure, calls[i].value, calls[i].callData);
        }
        require(total == msg.value, "the values do not add up to msg.value");
    }

    function _call(address target, bool allowFailure, uint256 value, bytes calldata data)
        private
        returns (Result memory result)
    {
        (bool ok, bytes memory returned) = target.call{value: value}(data);
        require(ok || allowFailure, "a call failed");
        result = Result(ok, returned);
    }
}
