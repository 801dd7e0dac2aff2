//! Statements built at run time (the multi-row insert of events, the
//! listing near a place): their values, each numbered where the text that
//! binds it is written, so that no placeholder is counted by hand.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

/// A value bound to a statement built at run time.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bind<'q> {
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(&'q str),
    MaybeText(Option<&'q str>),
}

/// The values of a statement built at run time, in order.
#[derive(Debug, Default)]
pub(super) struct Binds<'q>(Vec<Bind<'q>>);

impl<'q> Binds<'q> {
    /// Keeps `value` and returns the placeholder that names it: `$1`, `$2`...
    pub(super) fn push(&mut self, value: Bind<'q>) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }

    /// A float that may be NULL, as `CASE WHEN $a THEN $b END`: through
    /// `sqlx::Any` a NULL float is declared with another type, which a later
    /// real value on the same prepared statement then contradicts
    /// (PostgreSQL), so a flag and a plain value are bound instead.
    pub(super) fn push_maybe_real(&mut self, value: Option<f64>) -> String {
        let present = self.push(Bind::Bool(value.is_some()));
        let value = self.push(Bind::Real(value.unwrap_or(0.0)));
        format!("CASE WHEN {present} THEN {value} END")
    }

    /// The statement `sql` with these values bound.
    pub(super) fn query<'s>(self, sql: &'s str) -> Query<'s, Any, AnyArguments<'s>>
    where
        'q: 's,
    {
        self.0
            .into_iter()
            .fold(sqlx::query(sql), |query, bind| match bind {
                Bind::Int(value) => query.bind(value),
                Bind::Real(value) => query.bind(value),
                Bind::Bool(value) => query.bind(value),
                Bind::Text(value) => query.bind(value),
                Bind::MaybeText(value) => query.bind(value),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_the_order_values_are_kept() {
        let mut binds = Binds::default();
        assert_eq!(binds.push(Bind::Int(7)), "$1");
        assert_eq!(binds.push(Bind::Text("x")), "$2");
        assert_eq!(binds.push_maybe_real(None), "CASE WHEN $3 THEN $4 END");
        assert_eq!(binds.push(Bind::MaybeText(None)), "$5");
    }
}
