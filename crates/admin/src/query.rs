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

fn out_of_range(page: usize, page_size: usize, len: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "page_out_of_range",
        format!("Page out of range, page: {page} page size: {page_size}, len: {len}"),
    )
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
        let Some(page) = self.page.as_deref() else {
            return Ok(Json(Value::Array(self.shape(items))));
        };
        let (page, page_size) = self.pagination(page)?;
        let total = items.len();
        if let Some(filter) = self.name_filter()? {
            items.retain(|item| {
                item.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| filter.is_match(n))
            });
        }
        let filtered = items.len();
        let page_count = filtered.div_ceil(page_size);
        if page > page_count.max(1) {
            return Err(out_of_range(page, page_size, filtered));
        }
        let items: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .collect();
        Ok(self.wrap(items, page, page_size, filtered, total))
    }

    /// RabbitMQ's page object around one page of `items`.
    fn wrap(
        &self,
        items: Vec<Value>,
        page: usize,
        page_size: usize,
        filtered: usize,
        total: usize,
    ) -> Json<Value> {
        Json(json!({
            "filtered_count": filtered,
            "item_count": items.len(),
            "items": self.shape(items),
            "page": page,
            "page_count": filtered.div_ceil(page_size),
            "page_size": page_size,
            "total_count": total,
        }))
    }

    /// [`Self::apply`] for items that are costly to render: when only a page is wanted and
    /// the order is by name (or the default order `items` come in), the name filter and the
    /// page are taken from `items` first and only the page's items are rendered.
    pub fn apply_lazy<T>(
        &self,
        mut items: Vec<T>,
        name: impl Fn(&T) -> &str,
        render: impl Fn(&T) -> Value,
    ) -> ApiResult<Json<Value>> {
        let by_name = match self.sort.as_deref() {
            None | Some("") => true,
            Some("name") => {
                items.sort_by(|a, b| name(a).cmp(name(b)));
                true
            }
            Some(_) => false,
        };
        let Some(page) = self.page.as_deref().filter(|_| by_name) else {
            return self.apply(items.iter().map(render).collect());
        };
        let (page, page_size) = self.pagination(page)?;
        if truthy(self.sort_reverse.as_ref()) {
            items.reverse();
        }
        let total = items.len();
        if let Some(filter) = self.name_filter()? {
            items.retain(|item| filter.is_match(name(item)));
        }
        let filtered = items.len();
        let page_count = filtered.div_ceil(page_size);
        if page > page_count.max(1) {
            return Err(out_of_range(page, page_size, filtered));
        }
        let rendered: Vec<Value> = items
            .iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(render)
            .collect();
        Ok(self.wrap(rendered, page, page_size, filtered, total))
    }

    /// `columns` applied to one object.
    pub fn select_one(&self, value: Value) -> Value {
        match self.columns() {
            Some(columns) => select(&value, &columns),
            None => value,
        }
    }

    fn columns(&self) -> Option<Vec<&str>> {
        self.columns.as_deref().map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
    }

    fn shape(&self, items: Vec<Value>) -> Vec<Value> {
        match self.columns() {
            Some(columns) => items.iter().map(|i| select(i, &columns)).collect(),
            None => items,
        }
    }

    /// The `name` filter of a page, if any.
    fn name_filter(&self) -> ApiResult<Option<regex::Regex>> {
        let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let pattern = if truthy(self.use_regex.as_ref()) {
            name.to_owned()
        } else {
            regex::escape(name)
        };
        RegexBuilder::new(&pattern)
            .case_insensitive(true)
            .build()
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("invalid name regex: {e}")))
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
    fn lazy_pages_render_only_their_items_and_agree_with_eager_ones() {
        let names: Vec<String> = (0..50).map(|i| format!("q{i:02}")).collect();
        let rendered = std::cell::Cell::new(0);
        let render = |n: &String| {
            rendered.set(rendered.get() + 1);
            json!({"name": n, "messages": 1})
        };
        for q in [
            ListQuery {
                page: Some("2".into()),
                page_size: Some("10".into()),
                ..ListQuery::default()
            },
            ListQuery {
                page: Some("1".into()),
                name: Some("Q1".into()),
                ..ListQuery::default()
            },
            ListQuery {
                page: Some("1".into()),
                page_size: Some("10".into()),
                sort: Some("name".into()),
                sort_reverse: Some("true".into()),
                columns: Some("name".into()),
                ..ListQuery::default()
            },
        ] {
            rendered.set(0);
            let Json(lazy) = q.apply_lazy(names.clone(), |n| n.as_str(), render).unwrap();
            assert!(
                rendered.get() <= 10,
                "rendered {} for {q:?}",
                rendered.get()
            );
            let Json(eager) = q.apply(names.iter().map(render).collect()).unwrap();
            assert_eq!(lazy, eager);
        }
        let sorted = ListQuery {
            page: Some("1".into()),
            sort: Some("messages".into()),
            ..ListQuery::default()
        };
        rendered.set(0);
        let _ = sorted
            .apply_lazy(names.clone(), |n| n.as_str(), render)
            .unwrap();
        assert_eq!(
            rendered.get(),
            50,
            "sorting by a rendered field renders everything"
        );
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
