//! Catalog and usage entities. Every entity carries the seller account it belongs to, so that
//! storage can be partitioned by seller.

use marketmeter_wire::{EpochTime, Quantity};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ec2,
    Ecs,
    Eks,
    Fargate,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ec2 => "ec2",
            Self::Ecs => "ecs",
            Self::Eks => "eks",
            Self::Fargate => "fargate",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ec2, Self::Ecs, Self::Eks, Self::Fargate]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
    /// RegisterUsage runs only on container platforms (model: PlatformNotSupportedException).
    pub fn is_container(self) -> bool {
        !matches!(self, Self::Ec2)
    }
}

/// The compute resource a workload credential stands for: an EC2 instance, ECS task or EKS pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub resource_id: String,
    pub platform: Platform,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub account_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub workload: Option<Workload>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductKind {
    Saas,
    Ami,
    Container,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Saas => "saas",
            Self::Ami => "ami",
            Self::Container => "container",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Saas, Self::Ami, Self::Container]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimension {
    pub name: String,
    #[serde(default)]
    pub unit: Option<String>,
    /// Price per unit as a decimal string (reporting only; never a float).
    #[serde(default)]
    pub price: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub code: String,
    pub seller_account: String,
    pub kind: ProductKind,
    pub fulfillment_url: Option<String>,
    pub dimensions: Vec<Dimension>,
}

impl Product {
    pub fn has_dimension(&self, name: &str) -> bool {
        self.dimensions.iter().any(|d| d.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgreementStatus {
    Active,
    Cancelled,
    Expired,
}

impl AgreementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Cancelled, Self::Expired]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A buyer's subscription to a product; the license ARN and agreement id AWS hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    pub agreement_id: String,
    pub product_code: String,
    pub seller_account: String,
    pub customer_account: String,
    pub customer_identifier: String,
    pub license_arn: String,
    pub status: AgreementStatus,
    pub starts: Option<OffsetDateTime>,
    pub ends: Option<OffsetDateTime>,
}

impl Agreement {
    /// Whether `t` falls inside the agreement's period [starts, ends).
    pub fn covers(&self, t: OffsetDateTime) -> bool {
        self.starts.is_none_or(|s| t >= s) && self.ends.is_none_or(|e| t < e)
    }

    /// Entitled at `t`: active and inside its period.
    pub fn is_active_at(&self, t: OffsetDateTime) -> bool {
        self.status == AgreementStatus::Active && self.covers(t)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    pub token: String,
    pub product_code: String,
    pub seller_account: String,
    pub customer_account: String,
    pub agreement_id: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub single_use: bool,
    pub used_at: Option<OffsetDateTime>,
}

/// One RSA key version a container product's RegisterUsage signatures are made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductKey {
    pub product_code: String,
    pub seller_account: String,
    pub version: i64,
    /// PKCS#8 PEM. A secret: never logged or returned.
    pub private_pem: String,
    /// SPKI PEM.
    pub public_pem: String,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

/// One run of a workload: from its first successful RegisterUsage (entitlement is only
/// checked then) until it is reported stopped. Metered per hour (see [`crate::containers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSession {
    pub product_code: String,
    pub seller_account: String,
    pub resource_id: String,
    pub customer_account: String,
    pub platform: Platform,
    pub region: String,
    /// 1 for a workload's first run; a registration after a stop starts the next one. The
    /// store assigns it.
    pub run: i64,
    pub first_registered_at: OffsetDateTime,
    /// `None` while running.
    pub stopped_at: Option<OffsetDateTime>,
}

/// Who a usage record is for. The legacy and concurrent-agreement identities are
/// deduplicated independently (AWS documents that mixing them bills twice).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ProductCode + CustomerIdentifier (BatchMeterUsage, legacy).
    Legacy {
        product_code: String,
        customer_identifier: String,
    },
    /// CustomerAWSAccountId + LicenseArn (BatchMeterUsage, concurrent agreements).
    License {
        customer_account: String,
        license_arn: String,
    },
    /// ProductCode + the calling EC2 instance / ECS task / EKS pod (MeterUsage).
    Workload {
        product_code: String,
        resource_id: String,
    },
}

impl Identity {
    /// Stable (kind, part a, part b) triple for the unique key in storage.
    pub fn parts(&self) -> (&'static str, &str, &str) {
        match self {
            Self::Legacy {
                product_code,
                customer_identifier,
            } => ("legacy", product_code, customer_identifier),
            Self::License {
                customer_account,
                license_arn,
            } => ("license", customer_account, license_arn),
            Self::Workload {
                product_code,
                resource_id,
            } => ("workload", product_code, resource_id),
        }
    }
}

/// The dedup key: one record per identity, dimension and hour, per seller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeteringKey {
    pub seller_account: String,
    pub identity: Identity,
    pub dimension: String,
    /// Hour bucket: floor(epoch seconds / 3600).
    pub hour: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeteringOperation {
    BatchMeterUsage,
    MeterUsage,
}

impl MeteringOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BatchMeterUsage => "BatchMeterUsage",
            Self::MeterUsage => "MeterUsage",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::BatchMeterUsage, Self::MeterUsage]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationTag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAllocation {
    pub quantity: Quantity,
    /// Empty for the untagged bucket.
    pub tags: Vec<AllocationTag>,
}

/// A usage record as stored: the dedup claim and the record are this one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecordRow {
    pub metering_record_id: String,
    pub key: MeteringKey,
    pub product_code: String,
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub resource_id: Option<String>,
    pub timestamp: EpochTime,
    pub quantity: Quantity,
    pub allocations: Vec<StoredAllocation>,
    pub operation: MeteringOperation,
    pub received_at: OffsetDateTime,
}
