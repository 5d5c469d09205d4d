// What relay-compiler reads: a @refetchable fragment on Mailing, and the query that spreads it.
const { graphql } = require("relay-runtime");

graphql`
  fragment MailingCard_mailing on Mailing @refetchable(queryName: "MailingCardRefetchQuery") {
    id
    text
    status
    stats {
      total
      sent
    }
  }
`;

graphql`
  query MailingCardQuery($id: ID!) {
    mailing(id: $id) {
      id
      ...MailingCard_mailing
    }
  }
`;
