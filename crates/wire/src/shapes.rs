//! The input and output structures of the four operations, member names exactly as the model.
//! Unknown members are ignored (forward compatibility with newer SDKs).

use crate::timestamp::EpochTime;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageAllocation {
    #[serde(
        rename = "AllocatedUsageQuantity",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub allocated_usage_quantity: Option<i64>,
    #[serde(
        rename = "AllocatedUsageQuantityAsDecimal",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub allocated_usage_quantity_as_decimal: Option<String>,
    #[serde(rename = "Tags", skip_serializing_if = "Option::is_none", default)]
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    #[serde(rename = "Timestamp")]
    pub timestamp: EpochTime,
    #[serde(
        rename = "CustomerIdentifier",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub customer_identifier: Option<String>,
    #[serde(rename = "Dimension")]
    pub dimension: String,
    #[serde(rename = "Quantity", skip_serializing_if = "Option::is_none", default)]
    pub quantity: Option<i64>,
    #[serde(
        rename = "QuantityAsDecimal",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub quantity_as_decimal: Option<String>,
    #[serde(
        rename = "UsageAllocations",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub usage_allocations: Option<Vec<UsageAllocation>>,
    #[serde(
        rename = "CustomerAWSAccountId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub customer_aws_account_id: Option<String>,
    #[serde(
        rename = "LicenseArn",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub license_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeterUsageRequest {
    #[serde(rename = "UsageRecords")]
    pub usage_records: Vec<UsageRecord>,
    #[serde(
        rename = "ProductCode",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub product_code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsageRecordResultStatus {
    Success,
    CustomerNotSubscribed,
    DuplicateRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecordResult {
    #[serde(rename = "UsageRecord")]
    pub usage_record: UsageRecord,
    #[serde(
        rename = "MeteringRecordId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub metering_record_id: Option<String>,
    #[serde(rename = "Status")]
    pub status: UsageRecordResultStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeterUsageResult {
    #[serde(rename = "Results")]
    pub results: Vec<UsageRecordResult>,
    #[serde(rename = "UnprocessedRecords")]
    pub unprocessed_records: Vec<UsageRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterUsageRequest {
    #[serde(rename = "ProductCode")]
    pub product_code: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: EpochTime,
    #[serde(rename = "UsageDimension")]
    pub usage_dimension: String,
    #[serde(
        rename = "UsageQuantity",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub usage_quantity: Option<i64>,
    #[serde(
        rename = "UsageQuantityAsDecimal",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub usage_quantity_as_decimal: Option<String>,
    #[serde(rename = "DryRun", skip_serializing_if = "Option::is_none", default)]
    pub dry_run: Option<bool>,
    #[serde(
        rename = "UsageAllocations",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub usage_allocations: Option<Vec<UsageAllocation>>,
    #[serde(
        rename = "ClientToken",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub client_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterUsageResult {
    #[serde(rename = "MeteringRecordId")]
    pub metering_record_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterUsageRequest {
    #[serde(rename = "ProductCode")]
    pub product_code: String,
    #[serde(rename = "PublicKeyVersion")]
    pub public_key_version: i64,
    #[serde(rename = "Nonce", skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterUsageResult {
    #[serde(
        rename = "PublicKeyRotationTimestamp",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub public_key_rotation_timestamp: Option<EpochTime>,
    #[serde(rename = "Signature")]
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveCustomerRequest {
    #[serde(rename = "RegistrationToken")]
    pub registration_token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(
        rename = "AgreementId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub agreement_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveCustomerResult {
    #[serde(
        rename = "CustomerIdentifier",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub customer_identifier: Option<String>,
    #[serde(
        rename = "ProductCode",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub product_code: Option<String>,
    #[serde(
        rename = "CustomerAWSAccountId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub customer_aws_account_id: Option<String>,
    #[serde(
        rename = "LicenseArn",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub license_arn: Option<String>,
    #[serde(rename = "Metadata", skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<Metadata>,
}
