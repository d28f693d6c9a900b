//! An order pipeline: validates, prices and reserves an order, saving its
//! state after each step, then reports on sibling orders by status.

use serde::{Deserialize, Serialize};
use wf_guest::{Context, EventType, Json, ListFilter, StoreError, WorkflowStatus};

/// The workflow input.
#[derive(Debug, Deserialize)]
struct Order {
    customer: String,
    items: Vec<Item>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    sku: String,
    quantity: u32,
    price_cents: u64,
}

/// The workflow result.
#[derive(Debug, Serialize)]
struct Summary {
    order: String,
    customer: String,
    total_cents: u64,
    /// Other orders (ids starting with `order-`) by status, as stored now.
    other_orders_completed: usize,
    other_orders_running: usize,
    other_orders_failed: usize,
}

/// Orders are workflows whose id starts with this.
const ORDER_PREFIX: &str = "order-";

fn run(ctx: &Context, order: Order) -> Result<Summary, String> {
    if order.items.is_empty() {
        return Err("the order has no items".into());
    }
    if let Some(item) = order.items.iter().find(|i| i.quantity == 0) {
        return Err(format!("item {} has quantity 0", item.sku));
    }
    step(ctx, "validate", &order.items.len())?;

    let total_cents = order
        .items
        .iter()
        .try_fold(0u64, |sum, i| {
            sum.checked_add(i.price_cents.checked_mul(u64::from(i.quantity))?)
        })
        .ok_or("the order total overflows")?;
    step(ctx, "price", &total_cents)?;

    let reserved: Vec<String> = order
        .items
        .iter()
        .map(|i| format!("{}x{}", i.quantity, i.sku))
        .collect();
    step(ctx, "reserve", &reserved)?;

    let count = |status| -> Result<usize, StoreError> {
        let siblings = ctx.store().list_all(&ListFilter::new().status(status))?;
        Ok(siblings
            .iter()
            .filter(|s| {
                s.workflow_id.starts_with(ORDER_PREFIX) && s.workflow_id != ctx.workflow_id()
            })
            .count())
    };
    Ok(Summary {
        order: ctx.workflow_id().to_string(),
        customer: order.customer,
        total_cents,
        other_orders_completed: count(WorkflowStatus::Completed).map_err(|e| e.to_string())?,
        other_orders_running: count(WorkflowStatus::Running).map_err(|e| e.to_string())?,
        other_orders_failed: count(WorkflowStatus::Failed).map_err(|e| e.to_string())?,
    })
}

/// Records a finished step with its result in this workflow's stored history.
fn step(ctx: &Context, name: &str, result: &impl Serialize) -> Result<(), String> {
    ctx.update_state(|state| {
        let event = state.push_event(EventType::ActivityCompleted);
        event.activity_name = name.to_string();
        event.result = Json::from_value(result).ok();
    })
    .map(drop)
    .map_err(|e| format!("saving step {name}: {e}"))
}

wf_guest::export!(run);
