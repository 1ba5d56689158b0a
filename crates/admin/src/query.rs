//! Listing parameters as RabbitMQ's management API takes them.
//!
//! ```text
//! name=x [use_regex=true]     with page: keep items whose name contains x (any case), or
//!                             matches regex x
//! sort=a.b [sort_reverse=true] order by a (nested) field
//! page=N [page_size=M]        one page (M <= 500, default 100), wrapped as
//!                             {items, page, page_count, page_size, item_count,
//!                              filtered_count, total_count}
//! columns=a,b.c               keep only these (nested) fields of each item
//! ```

use std::cmp::Ordering;

use axum::Json;
use axum::http::StatusCode;
use regex::RegexBuilder;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 500;

/// The query string of a listing.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub name: Option<String>,
    pub use_regex: Option<String>,
    pub sort: Option<String>,
    pub sort_reverse: Option<String>,
    pub columns: Option<String>,
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// The value at a dotted path (`message_stats.publish_details.rate`).
pub fn at<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, key| v.get(key))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Keeps only `columns` of `item`, nesting dotted paths.
fn select(item: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for column in columns {
        let Some(value) = at(item, column) else {
            continue;
        };
        let mut keys = column.split('.').peekable();
        let mut node = &mut out;
        while let Some(key) = keys.next() {
            if keys.peek().is_none() {
                node.insert(key.to_owned(), value.clone());
                break;
            }
            let entry = node
                .entry(key.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else {
                break;
            };
            node = next;
        }
    }
    Value::Object(out)
}

impl ListQuery {
    /// Applies sort and columns to `items`, and with `page` also the name filter and
    /// pagination (RabbitMQ filters by name only when paginating).
    pub fn apply(&self, mut items: Vec<Value>) -> ApiResult<Json<Value>> {
        if let Some(sort) = self.sort.as_deref().filter(|s| !s.is_empty()) {
            items.sort_by(|a, b| compare(at(a, sort), at(b, sort)));
        }
        if truthy(self.sort_reverse.as_ref()) {
            items.reverse();
        }
        let columns: Option<Vec<&str>> = self.columns.as_deref().map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        });
        let shape = |items: Vec<Value>| -> Vec<Value> {
            match &columns {
                Some(columns) => items.iter().map(|i| select(i, columns)).collect(),
                None => items,
            }
        };
        let Some(page) = self.page.as_deref() else {
            return Ok(Json(Value::Array(shape(items))));
        };
        let (page, page_size) = self.pagination(page)?;
        let total = items.len();
        if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) {
            let pattern = if truthy(self.use_regex.as_ref()) {
                name.to_owned()
            } else {
                regex::escape(name)
            };
            let re = RegexBuilder::new(&pattern)
                .case_insensitive(true)
                .build()
                .map_err(|e| ApiError::bad_request(format!("invalid name regex: {e}")))?;
            items.retain(|item| {
                item.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| re.is_match(n))
            });
        }
        let filtered = items.len();
        let page_count = filtered.div_ceil(page_size);
        if page > page_count.max(1) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "page_out_of_range",
                format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}"),
            ));
        }
        let items: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .collect();
        Ok(Json(json!({
            "filtered_count": filtered,
            "item_count": items.len(),
            "items": shape(items),
            "page": page,
            "page_count": page_count,
            "page_size": page_size,
            "total_count": total,
        })))
    }

    /// `page` and `page_size`, with RabbitMQ's errors.
    fn pagination(&self, page: &str) -> ApiResult<(usize, usize)> {
        let invalid = || ApiError::bad_request("Pagination parameters are invalid");
        let page: usize = page.trim().parse().map_err(|_| invalid())?;
        let size = match self.page_size.as_deref() {
            Some(size) => Some(size.trim().parse::<usize>().map_err(|_| invalid())?),
            None => None,
        };
        let page_size = size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
            let shown = size.map_or_else(|| "undefined".to_owned(), |s| s.to_string());
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_pagination_parameters",
                format!("Invalid pagination parameters: page number {page}, page size {shown}"),
            ));
        }
        if self.name.as_deref() == Some("") && truthy(self.use_regex.as_ref()) {
            return Err(invalid());
        }
        Ok((page, page_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        (0..5)
            .map(|i| json!({"name": format!("q{i}"), "messages": 10 - i, "message_stats": {"publish": i}}))
            .collect()
    }

    #[test]
    fn pages_wrap_items_with_counts() {
        let q = ListQuery {
            page: Some("2".into()),
            page_size: Some("2".into()),
            ..ListQuery::default()
        };
        let Json(v) = q.apply(items()).unwrap();
        assert_eq!(v["page_count"], 3);
        assert_eq!(v["item_count"], 2);
        assert_eq!(v["total_count"], 5);
        assert_eq!(v["items"][0]["name"], "q2");
        let out_of_range = ListQuery {
            page: Some("4".into()),
            page_size: Some("2".into()),
            ..ListQuery::default()
        };
        let err = out_of_range.apply(items()).unwrap_err();
        assert_eq!(
            (err.status, err.error),
            (StatusCode::BAD_REQUEST, "page_out_of_range")
        );
        let empty = ListQuery {
            page: Some("1".into()),
            ..ListQuery::default()
        };
        let Json(v) = empty.apply(Vec::new()).unwrap();
        assert_eq!(v["page_count"], 0);
    }

    #[test]
    fn filter_sort_and_columns() {
        let q = ListQuery {
            page: Some("1".into()),
            name: Some("^q[13]$".into()),
            use_regex: Some("true".into()),
            sort: Some("messages".into()),
            columns: Some("name,message_stats.publish".into()),
            ..ListQuery::default()
        };
        let Json(v) = q.apply(items()).unwrap();
        assert_eq!(
            v["items"],
            json!([
                {"name": "q3", "message_stats": {"publish": 3}},
                {"name": "q1", "message_stats": {"publish": 1}},
            ])
        );
        let plain = ListQuery {
            page: Some("1".into()),
            name: Some("Q4".into()),
            ..ListQuery::default()
        };
        let Json(v) = plain.apply(items()).unwrap();
        assert_eq!(
            (v["filtered_count"].clone(), v["total_count"].clone()),
            (json!(1), json!(5))
        );
        let unpaged = ListQuery {
            name: Some("Q4".into()),
            ..ListQuery::default()
        };
        let Json(v) = unpaged.apply(items()).unwrap();
        assert_eq!(
            v.as_array().unwrap().len(),
            5,
            "RabbitMQ filters only pages"
        );
        for bad in ["0", "abc"] {
            let q = ListQuery {
                page: Some(bad.into()),
                ..ListQuery::default()
            };
            assert_eq!(
                q.apply(items()).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
        let reversed = ListQuery {
            sort: Some("name".into()),
            sort_reverse: Some("true".into()),
            ..ListQuery::default()
        };
        let Json(v) = reversed.apply(items()).unwrap();
        assert_eq!(v[0]["name"], "q4");
    }
}
